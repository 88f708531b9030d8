"""Password rules for people choosing a password (registration, reset, first log-in, admins).

Hashing lives in ``gzsb.accounts.service`` (Argon2id); this module only says whether a new
password is acceptable, with Chinese messages a student can act on.

Common and breached passwords come from the ``zxcvbn`` package (offline): its list of the
30,000 most frequent passwords of public breaches, and its guess estimate, which also
catches keyboard walks, repeats, sequences and dictionary words with digits around them.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

log = logging.getLogger(__name__)

MIN_LENGTH = 8
# NIST SP 800-63B: allow at least 64; passphrases with spaces are welcome.
MAX_LENGTH = 128
# zxcvbn's matching grows with the length; what it reads of a long password is enough to judge it.
_ESTIMATE_CHARS = 64
# zxcvbn score 0-1: fewer than ~10^6 guesses, found within seconds by an offline attack.
_MIN_SCORE = 2

_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")
_ALLOWED = re.compile(r"^[\x20-\x7e]+$")  # printable ASCII, spaces included


@lru_cache(maxsize=1)
def breached_passwords() -> frozenset[str]:
    """zxcvbn's breached-password list (lower-case), read once."""
    return frozenset(FREQUENCY_LISTS["passwords"])


def too_guessable(password: str) -> bool:
    if password.lower() in breached_passwords():
        return True
    return zxcvbn(password[:_ESTIMATE_CHARS])["score"] < _MIN_SCORE


def password_problems(password: str, *, id_number: str | None = None, mobile: str | None = None) -> list[str]:
    """Every rule ``password`` breaks (empty: acceptable).

    ``id_number`` (already validated, 18 characters) and ``mobile`` are the student's
    own: a password containing the birth date or the mobile number is refused.
    """
    if not password:
        return ["请设置密码"]
    problems = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        problems.append(f"密码长度应为{MIN_LENGTH}～{MAX_LENGTH}位")
    if not _ALLOWED.match(password):
        problems.append("密码只能包含字母、数字、空格和英文符号，不能有中文")
    if not (_LETTER.search(password) and _DIGIT.search(password)):
        problems.append("密码应同时包含字母和数字")
    if len(password) <= MAX_LENGTH and not problems and too_guessable(password):
        problems.append("密码过于常见，请换一个")
    if id_number and len(id_number) == 18:
        birth = id_number[6:14]
        if birth in password or birth[2:] in password:
            problems.append("密码不能包含出生日期")
        if id_number[-6:].upper() in password.upper():
            problems.append("密码不能包含身份证号")
    if mobile and (password == mobile or (len(mobile) >= 7 and mobile in password)):
        problems.append("密码不能是手机号")
    return problems
