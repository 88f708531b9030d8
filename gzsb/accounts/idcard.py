"""Resident ID numbers (GB 11643-1999): check digit, birth date and sex."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")


@dataclass(frozen=True)
class IdNumber:
    value: str
    birth_date: date
    sex: str  # 男 / 女


def check_digit(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def parse_id_number(raw: str, today: date | None = None) -> IdNumber:
    """Raises ValueError with a Chinese message a student can act on."""
    value = raw.strip().upper()
    if not _SHAPE.match(value):
        raise ValueError("身份证号应为18位，最后一位可以是数字或X")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise ValueError("身份证号中的出生日期无效") from None
    if born > (today or date.today()) or born.year < 1900:
        raise ValueError("身份证号中的出生日期无效")
    if check_digit(value[:17]) != value[17]:
        raise ValueError("身份证号校验位不正确，请核对")
    return IdNumber(value, born, "男" if int(value[16]) % 2 else "女")
