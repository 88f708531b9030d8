"""Resident ID numbers (GB 11643-1999): area code, birth date, check digit and sex."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
# ASCII digits only: `\d` would also take fullwidth and Arabic-Indic digits.
_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")
# Longer input is refused before any work (a typed ID number with a few spaces fits).
MAX_TYPED = 40

# GB/T 2260 province-level codes (the first two digits). 71 台湾省 is in the standard;
# 81/82/83 are the 港澳台居民居住证 numbers (GB 11643 form), which may register too.
# Prefecture-level codes are deliberately not checked: old cards keep codes of prefectures
# since merged or renamed, and no maintained offline list of every historical code exists.
PROVINCES: dict[str, str] = {
    "11": "北京市", "12": "天津市", "13": "河北省", "14": "山西省", "15": "内蒙古自治区",
    "21": "辽宁省", "22": "吉林省", "23": "黑龙江省",
    "31": "上海市", "32": "江苏省", "33": "浙江省", "34": "安徽省", "35": "福建省", "36": "江西省", "37": "山东省",
    "41": "河南省", "42": "湖北省", "43": "湖南省", "44": "广东省", "45": "广西壮族自治区", "46": "海南省",
    "50": "重庆市", "51": "四川省", "52": "贵州省", "53": "云南省", "54": "西藏自治区",
    "61": "陕西省", "62": "甘肃省", "63": "青海省", "64": "宁夏回族自治区", "65": "新疆维吾尔自治区",
    "71": "台湾省", "81": "香港特别行政区", "82": "澳门特别行政区", "83": "台湾地区（居住证）",
}  # fmt: skip
RESIDENCE_PERMITS = {"81", "82", "83"}  # numbered 810000…, 820000…, 830000…


@dataclass(frozen=True)
class IdNumber:
    value: str
    birth_date: date
    sex: str  # 男 / 女


def check_digit(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def normalize_id_number(raw: str) -> str:
    """NFKC (fullwidth １２０… becomes ASCII), no spaces, upper-case X."""
    return unicodedata.normalize("NFKC", raw[: MAX_TYPED * 2]).replace(" ", "").strip().upper()


def parse_id_number(raw: str, today: date | None = None) -> IdNumber:
    """Raises ValueError with a Chinese message a student can act on."""
    value = normalize_id_number(raw)
    if len(raw) > MAX_TYPED or not _SHAPE.match(value):
        raise ValueError("身份证号应为18位，最后一位可以是数字或X")
    # xx0000 names a whole province, never a person's place, except on the residence permits.
    if value[:2] not in PROVINCES or (value[2:6] == "0000" and value[:2] not in RESIDENCE_PERMITS):
        raise ValueError("身份证号中的地区代码无效，请核对")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise ValueError("身份证号中的出生日期无效") from None
    if born > (today or date.today()) or born.year < 1900:
        raise ValueError("身份证号中的出生日期无效")
    if check_digit(value[:17]) != value[17]:
        raise ValueError("身份证号校验位不正确，请核对")
    return IdNumber(value, born, "男" if int(value[16]) % 2 else "女")
