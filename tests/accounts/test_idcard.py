"""GB 11643-1999 resident ID numbers: check digit, birth date, sex."""

from __future__ import annotations

from datetime import date

import pytest

from gzsb.accounts.idcard import check_digit, parse_id_number

# The GB 11643 example, and a number whose check digit was computed by hand (sum 89, 89 % 11 = 1 → 0).
VALID = {
    "11010519491231002X": (date(1949, 12, 31), "女"),
    "120104200302020010": (date(2003, 2, 2), "男"),
}


@pytest.mark.parametrize("number", sorted(VALID))
def test_valid_numbers_give_birth_date_and_sex(number: str) -> None:
    person = parse_id_number(number)
    assert (person.birth_date, person.sex) == VALID[number]
    assert person.value == number


def test_check_digit_of_the_standard_example() -> None:
    # GB 11643-1999 appendix example: 11010519491231002 → X.
    assert check_digit("11010519491231002") == "X"


def test_lower_case_x_and_spaces_are_accepted() -> None:
    person = parse_id_number(" 11010519491231002x ")
    assert person.value == "11010519491231002X"
    assert person.sex == "女"  # 17th digit 2 is even


@pytest.mark.parametrize("last", [d for d in "0123456789X" if d != "0"])
def test_every_wrong_check_digit_is_refused(last: str) -> None:
    with pytest.raises(ValueError, match="校验位不正确"):
        parse_id_number("12010420030202001" + last)


@pytest.mark.parametrize(
    "first17",
    [
        "12010420030230001",  # 30 February
        "12010420031301001",  # month 13
        "12010420030000001",  # day 0
        "12010418991231001",  # before 1900
    ],
)
def test_impossible_birth_dates_are_refused(first17: str) -> None:
    with pytest.raises(ValueError, match="出生日期无效"):
        parse_id_number(first17 + check_digit(first17))


def test_birth_date_in_the_future_is_refused() -> None:
    first17 = "12010420300101001"
    with pytest.raises(ValueError, match="出生日期无效"):
        parse_id_number(first17 + check_digit(first17), today=date(2026, 12, 1))


@pytest.mark.parametrize(
    "raw", ["", "12010420030202001", "1201042003020200100", "12010420030202001Y", "X20104200302020010"]
)
def test_wrong_shapes_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="18位"):
        parse_id_number(raw)


def test_x_only_where_the_check_digit_says_so() -> None:
    # 12010420030202001 has check digit 0: an X there is wrong, not "a letter allowed at the end".
    assert check_digit("12010420030202001") == "0"
    with pytest.raises(ValueError, match="校验位不正确"):
        parse_id_number("12010420030202001X")
