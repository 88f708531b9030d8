"""Password rules for students choosing a password (registration, reset).

Hashing lives in ``gzsb.accounts.service`` (Argon2id); this module only says whether a new
password is acceptable, with Chinese messages a student can act on.
"""

from __future__ import annotations

import re

MIN_LENGTH = 8
MAX_LENGTH = 32

# A small built-in list of passwords that meet the length and letter+digit rules but are
# among the first tried by anyone guessing (compared case-insensitively).
COMMON_PASSWORDS = frozenset(
    {
        "password1", "password123", "passw0rd", "p@ssw0rd", "p@ssword1", "abc12345", "abc123456",
        "abcd1234", "abcd12345", "a1234567", "a12345678", "a123456789", "aa123456", "aa12345678",
        "qwe12345", "qwe123456", "qwer1234", "qwerty12", "qwerty123", "qwerty1234", "1qaz2wsx",
        "1q2w3e4r", "1q2w3e4r5t", "q1w2e3r4", "zxc12345", "zxc123456", "zxcvbnm1", "zxcvbnm123",
        "asd12345", "asd123456", "asdf1234", "admin123", "admin1234", "admin888", "root1234",
        "test1234", "test12345", "iloveyou1", "woaini1314", "woaini520", "5201314a", "a5201314",
        "1314520a", "letmein1", "welcome1", "welcome123", "hello123", "hello1234", "master123",
        "monkey123", "dragon123", "football1", "baseball1", "superman1", "trustno1", "sunshine1",
        "princess1", "abc123abc", "1234qwer", "123456ab", "123456abc", "12345678a", "123456789a",
        "a11111111", "aaa111111", "qq123456", "qq1234567", "wang1234", "zhang123", "li123456",
        "gaokao2026", "gaokao2027", "zhuanshengben1", "tianjin123", "tianjin2026", "tianjin2027",
    }
)  # fmt: skip

_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"\d")
_ALLOWED = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


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
        problems.append("密码只能包含字母、数字和英文符号，不能有空格或中文")
    if not (_LETTER.search(password) and _DIGIT.search(password)):
        problems.append("密码应同时包含字母和数字")
    if password.lower() in COMMON_PASSWORDS:
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
