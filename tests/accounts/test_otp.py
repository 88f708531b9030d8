"""SMS verification codes: random, hashed, 10 minutes, single use, 5 tries, 60 s, daily cap."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from sqlalchemy import select

from gzsb.accounts import otp
from gzsb.errors import RateLimited
from gzsb.extensions import db
from gzsb.models import OtpCode

MOBILE_INDEX = "index-of-13700000001"


@pytest.fixture
def policy(app) -> otp.OtpPolicy:
    return otp.OtpPolicy.from_config(app.config)


def send(policy, clock, purpose: str = "register", target: str = MOBILE_INDEX) -> str:
    """Issue a code, commit, forget the session's objects (so rows come back from the database)."""
    sent: list[str] = []
    otp.issue(db.session, policy, target_index=target, purpose=purpose, now=clock(), deliver=sent.append)
    db.session.commit()
    db.session.expire_all()
    (code,) = sent
    return code


def check(policy, clock, code: str, purpose: str = "register", target: str = MOBILE_INDEX) -> None:
    try:
        otp.verify(db.session, policy, target_index=target, purpose=purpose, code=code, now=clock())
    finally:
        db.session.commit()  # wrong tries must count, as in the views
        db.session.expire_all()


def refusal(policy, clock, code: str, purpose: str = "register", target: str = MOBILE_INDEX) -> str:
    """The student-facing reason ``code`` is refused (fails the test if it is accepted)."""
    with pytest.raises(otp.OtpRejected) as refused:
        check(policy, clock, code, purpose, target)
    return refused.value.public_message


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_policy_comes_from_config(policy) -> None:
    assert policy.ttl.total_seconds() == 600 and policy.max_attempts == 5
    assert policy.resend_after.total_seconds() == 60 and policy.daily_limit == 10


def test_code_is_six_random_digits_and_only_its_keyed_hash_is_stored(app, policy, clock) -> None:
    code = send(policy, clock)
    assert len(code) == 6 and code.isdigit()
    row = db.session.scalars(select(OtpCode)).one()
    assert code not in row.code_hash
    salt, digest = row.code_hash.split("$")
    # The stored value is an HMAC under OTP_KEY, not a plain hash anyone can brute-force offline.
    message = f"{salt}|register|{MOBILE_INDEX}|{code}".encode()
    key = hashlib.sha256(app.config["OTP_KEY"].encode()).digest()
    assert digest == hmac.new(key, message, hashlib.sha256).hexdigest()
    assert digest != hashlib.sha256(message).hexdigest()
    # Codes differ from one send to the next (not a counter, not a constant).
    codes = {code}
    for _ in range(4):
        clock.advance(seconds=61)
        codes.add(send(policy, clock, target=f"other-{len(codes)}"))
    assert len(codes) >= 4


def test_same_code_twice_gives_different_hashes() -> None:
    first = otp.hash_code("k", "register", "t", "123456")
    second = otp.hash_code("k", "register", "t", "123456")
    assert first != second  # per-code salt
    assert otp.hash_code("k", "register", "t", "123456", first.split("$")[0]) == first


def test_code_is_valid_for_ten_minutes_only(app, policy, clock) -> None:
    code = send(policy, clock)
    clock.advance(minutes=10)
    assert "已失效" in refusal(policy, clock, code)
    fresh = send(policy, clock)
    clock.advance(minutes=9, seconds=59)
    check(policy, clock, fresh)


def test_code_is_single_use(app, policy, clock) -> None:
    code = send(policy, clock)
    check(policy, clock, code)
    row = db.session.scalars(select(OtpCode)).one()
    assert row.used_at is not None
    assert "已失效" in refusal(policy, clock, code)


def test_code_is_bound_to_its_purpose_and_number(app, policy, clock) -> None:
    code = send(policy, clock, purpose="register")
    assert "请先获取" in refusal(policy, clock, code, purpose="reset")
    assert "请先获取" in refusal(policy, clock, code, target="index-of-another-number")
    check(policy, clock, code, purpose="register")


def test_four_wrong_tries_still_leave_the_right_code_usable(app, policy, clock) -> None:
    code = send(policy, clock)
    for left in (4, 3, 2, 1):
        assert f"还可尝试{left}次" in refusal(policy, clock, wrong(code))
    check(policy, clock, code)


def test_fifth_wrong_try_kills_the_code(app, policy, clock) -> None:
    code = send(policy, clock)
    for _ in range(4):
        refusal(policy, clock, wrong(code))
    assert "次数过多" in refusal(policy, clock, "abc")  # malformed input counts as a try too
    assert "次数过多" in refusal(policy, clock, code)
    assert db.session.scalars(select(OtpCode)).one().attempts == 5


def test_one_send_per_sixty_seconds_per_number_and_purpose(app, policy, clock) -> None:
    send(policy, clock)
    clock.advance(seconds=59)
    with pytest.raises(RateLimited) as refused:
        send(policy, clock)
    assert refused.value.public_message == "操作过于频繁，请1秒后再获取验证码"
    assert refused.value.http_status == 429
    send(policy, clock, purpose="reset")  # another purpose has its own pace
    send(policy, clock, target="index-of-another-number")
    clock.advance(seconds=1)
    send(policy, clock)


def test_a_new_code_replaces_the_old_one(app, policy, clock) -> None:
    old = send(policy, clock)
    clock.advance(seconds=60)
    new = send(policy, clock)
    if old != new:
        assert "验证码错误" in refusal(policy, clock, old)
    check(policy, clock, new)


def test_at_most_ten_per_number_per_beijing_day(app, policy, clock) -> None:
    # 10:00 Beijing time; registration and reset codes share the number's daily budget.
    for i in range(10):
        send(policy, clock, purpose="register" if i % 2 else "reset")
        clock.advance(seconds=60)
    with pytest.raises(RateLimited) as refused:
        send(policy, clock)
    assert "今日" in refused.value.public_message
    send(policy, clock, target="index-of-another-number")
    clock.advance(hours=13, minutes=49)  # 23:59 Beijing: still the same day
    with pytest.raises(RateLimited):
        send(policy, clock)
    clock.advance(minutes=1)  # midnight in Beijing (16:00 UTC)
    send(policy, clock)


def test_refused_sends_store_nothing_and_send_nothing(app, policy, clock) -> None:
    send(policy, clock)
    delivered: list[str] = []
    with pytest.raises(RateLimited):
        otp.issue(
            db.session, policy, target_index=MOBILE_INDEX, purpose="register", now=clock(), deliver=delivered.append
        )
    assert delivered == []
    assert len(db.session.scalars(select(OtpCode)).all()) == 1


def test_decoy_is_stored_and_limited_like_a_real_code_but_not_delivered(app, policy, clock) -> None:
    otp.issue(db.session, policy, target_index=MOBILE_INDEX, purpose="reset", now=clock(), deliver=None)
    db.session.commit()
    with pytest.raises(RateLimited):
        otp.issue(db.session, policy, target_index=MOBILE_INDEX, purpose="reset", now=clock(), deliver=None)
    assert "还可尝试4次" in refusal(policy, clock, "123456", purpose="reset")


def test_unknown_purpose_is_a_programming_error(app, policy, clock) -> None:
    with pytest.raises(ValueError):
        otp.issue(db.session, policy, target_index=MOBILE_INDEX, purpose="login", now=clock(), deliver=None)


def test_two_submits_of_one_code_cannot_both_pass(app, policy, clock) -> None:
    """The second of two parallel submits may have read the row before the first used it."""
    from sqlalchemy.orm import Session

    code = send(policy, clock)
    first, second = Session(db.engine, expire_on_commit=False), Session(db.engine, expire_on_commit=False)
    try:
        stale = second.scalars(select(OtpCode)).one()  # read while still unused …
        second.commit()
        otp.verify(first, policy, target_index=MOBILE_INDEX, purpose="register", code=code, now=clock())
        first.commit()  # … then the first submit uses it
        assert stale.used_at is None
        with pytest.raises(otp.OtpRejected) as refused:
            otp.verify(second, policy, target_index=MOBILE_INDEX, purpose="register", code=code, now=clock())
        assert refused.value.public_message == "验证码已失效，请重新获取"
    finally:
        first.close()
        second.close()


def test_parallel_wrong_guesses_cannot_exceed_five(app, policy, clock) -> None:
    from sqlalchemy.orm import Session

    code = send(policy, clock)
    sessions = [Session(db.engine, expire_on_commit=False) for _ in range(7)]
    try:
        for s in sessions:  # every guesser read the counter at 0
            assert s.scalars(select(OtpCode)).one().attempts == 0
            s.commit()
        for s in sessions:
            with pytest.raises(otp.OtpRejected):
                otp.verify(s, policy, target_index=MOBILE_INDEX, purpose="register", code=wrong(code), now=clock())
            s.commit()
    finally:
        for s in sessions:
            s.close()
    db.session.expire_all()
    assert db.session.scalars(select(OtpCode)).one().attempts == 5
    assert "次数过多" in refusal(policy, clock, code)
