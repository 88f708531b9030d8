"""Field checks shared by the account pages (``forms``), the admin's account creation
(``gzsb.admin.service``) and the step schemas (``gzsb.common.fields``).

Pure functions, no Flask: each normalises what was typed (NFKC, so fullwidth ０-９ become
ASCII) and raises ValueError with the Chinese message shown next to the field. Numbers are
ASCII digits only: Python's ``\\d`` and ``str.isdigit`` also take Arabic-Indic and other
scripts' digits, which would make the same number look different to the blind index.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from gzsb.accounts.idcard import parse_id_number

log = logging.getLogger(__name__)

__all__ = ["ascii_digits", "normalize", "parse_id_number", "parse_mobile", "parse_name", "MAX_FIELD"]

# Any single typed field of the account pages; longer input is cut before normalising.
MAX_FIELD = 200
MOBILE = re.compile(r"^1[3-9][0-9]{9}$", re.ASCII)
NAME = re.compile(r"^[\u4e00-\u9fff·•A-Za-z ]{2,30}$")
_MOBILE_SEPARATORS = str.maketrans("", "", " -")


def normalize(value: str | None, cap: int = MAX_FIELD) -> str:
    """NFKC-normalised and stripped, at most ``cap`` characters (a cap before NFKC, which may grow text)."""
    return unicodedata.normalize("NFKC", (value or "")[: cap * 2]).strip()[:cap]


def ascii_digits(text: str, length: int | None = None) -> bool:
    """Only 0-9 (of exactly ``length`` characters when given)."""
    return bool(text) and all("0" <= c <= "9" for c in text) and (length is None or len(text) == length)


def parse_mobile(raw: str) -> str:
    """A mainland mobile number: 11 ASCII digits starting 13-19 (spaces and dashes dropped)."""
    text = normalize(raw, 32).translate(_MOBILE_SEPARATORS)
    if text.startswith("+86"):
        text = text[3:]
    if not MOBILE.match(text):
        raise ValueError("请输入11位手机号码")
    return text


def parse_name(raw: str) -> str:
    """A name as on the ID card: 2-30 Chinese characters, letters, · or spaces."""
    text = normalize(raw, 60)
    if not NAME.match(text):
        raise ValueError("请输入与身份证一致的姓名")
    return text
