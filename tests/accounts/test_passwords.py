"""Rules for new passwords (registration and reset)."""

from __future__ import annotations

import pytest

from gzsb.accounts.passwords import MAX_LENGTH, breached_passwords, password_problems
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
        ("Ab1cd2e", "密码长度应为8～128位"),  # 7
        ("Ab1" + "x7Q" * 42, "密码长度应为8～128位"),  # 129
        ("abcdefghij", "密码应同时包含字母和数字"),
        ("1234567890", "密码应同时包含字母和数字"),
        ("密码abc12345", "不能有中文"),
        ("Tab\there1x", "不能有中文"),  # control characters neither
        ("Password1", "密码过于常见"),  # case-insensitive
        ("1qaz2wsx", "密码过于常见"),
        ("michelle1", "密码过于常见"),  # zxcvbn's breach list, not a hand-typed one
        ("qwertyuiop123", "密码过于常见"),  # a keyboard walk: zxcvbn's estimate
        ("zhang123456", "密码过于常见"),
        ("li20030202x", "密码不能包含出生日期"),
        ("li030202xyz", "密码不能包含出生日期"),  # YYMMDD too
        ("a13700000001", "密码不能是手机号"),
    ],
)
def test_each_rule_says_what_is_wrong(password: str, message: str) -> None:
    problems = password_problems(password, id_number=ID, mobile=MOBILE)
    assert any(message in p for p in problems), problems


def test_length_bounds_are_inclusive() -> None:
    assert password_problems("Tj#gzs27") == []  # 8
    long = ("Tj9 gzsb kq2 " * 10)[:MAX_LENGTH]
    assert len(long) == 128 and password_problems(long) == []


def test_long_passphrases_with_spaces_are_welcome() -> None:
    # Issue 14: 64+ characters and spaces were refused (max 32, no spaces).
    phrase = "my 2 cats sleep on the warm windowsill of the old library every afternoon"
    assert len(phrase) > 64 and password_problems(phrase, id_number=ID, mobile=MOBILE) == []


def test_birth_date_and_mobile_rules_need_the_student() -> None:
    # Without the student's details, the same password is only judged on its own.
    assert password_problems("li20030202x") == []


def test_the_breach_list_is_the_packages_thirty_thousand() -> None:
    listed = breached_passwords()
    assert len(listed) >= 30_000 and {"password1", "abc12345", "qwer1234", "iloveyou1"} <= listed
    # Every listed password long enough and of letters and digits is refused.
    passing = [p for p in listed if len(p) >= 8 and any(c.isalpha() for c in p) and any(c in "0123456789" for c in p)]
    assert passing and all(
        "密码过于常见，请换一个" in password_problems(p) for p in passing[:: max(1, len(passing) // 300)]
    )


def test_hash_is_argon2id_and_set_password_ends_sessions() -> None:
    account = Account(name="张三", password_hash=hash_password("Old#pass2027"), session_epoch=3, failed_logins=4)
    assert account.password_hash.startswith("$argon2id$")
    set_password(account, "New#pass2027")
    assert check_password(account, "New#pass2027") and not check_password(account, "Old#pass2027")
    assert account.session_epoch == 4 and account.failed_logins == 0 and account.locked_until is None
