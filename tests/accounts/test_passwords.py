"""Rules for new passwords (registration and reset)."""

from __future__ import annotations

import pytest

from gzsb.accounts.passwords import COMMON_PASSWORDS, password_problems
from gzsb.accounts.service import check_password, hash_password, set_password
from gzsb.models import Account

ID = "120104200302020010"  # born 2003-02-02
MOBILE = "13700000001"


def test_a_good_password_has_no_problems() -> None:
    assert password_problems("Tj#gzsb2027x", id_number=ID, mobile=MOBILE) == []


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "请设置密码"),
        ("Ab1cd2e", "密码长度应为8～32位"),  # 7
        ("Ab1" + "x" * 30, "密码长度应为8～32位"),  # 33
        ("abcdefghij", "密码应同时包含字母和数字"),
        ("1234567890", "密码应同时包含字母和数字"),
        ("Abc 12345", "不能有空格或中文"),
        ("密码abc12345", "不能有空格或中文"),
        ("Password1", "密码过于常见"),  # case-insensitive
        ("1qaz2wsx", "密码过于常见"),
        ("li20030202x", "密码不能包含出生日期"),
        ("li030202xyz", "密码不能包含出生日期"),  # YYMMDD too
        ("a13700000001", "密码不能是手机号"),
    ],
)
def test_each_rule_says_what_is_wrong(password: str, message: str) -> None:
    problems = password_problems(password, id_number=ID, mobile=MOBILE)
    assert any(message in p for p in problems), problems


def test_length_bounds_are_inclusive() -> None:
    assert password_problems("Tjgzsb27") == []  # 8
    assert password_problems("T" * 30 + "j2") == []  # 32


def test_birth_date_and_mobile_rules_need_the_student() -> None:
    # Without the student's details, the same password is only judged on its own.
    assert password_problems("li20030202x") == []


def test_the_common_list_only_holds_passwords_the_other_rules_let_through() -> None:
    # Otherwise the entry would be dead weight: every listed password is 8–32 letters+digits.
    for common in COMMON_PASSWORDS:
        others = [p for p in password_problems(common) if "常见" not in p]
        assert others == [], (common, others)


def test_hash_is_argon2id_and_set_password_ends_sessions() -> None:
    account = Account(name="张三", password_hash=hash_password("Old#pass2027"), session_epoch=3, failed_logins=4)
    assert account.password_hash.startswith("$argon2id$")
    set_password(account, "New#pass2027")
    assert check_password(account, "New#pass2027") and not check_password(account, "Old#pass2027")
    assert account.session_epoch == 4 and account.failed_logins == 0 and account.locked_until is None
