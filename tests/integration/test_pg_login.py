"""Issue 14: parallel wrong passwords against one account on PostgreSQL (TEST_DATABASE_URL).

Before: each request read ``failed_logins``, checked the password and wrote the count
back, so 24 parallel tries were all checked and the counter stayed near 0. Now each try is
counted (and the lock set by the try that reaches the limit) in one UPDATE … RETURNING
before its password is checked: exactly ``LOCK_AFTER`` passwords are checked, the rest are
refused as locked, and the right password is refused too until the lock expires.
"""

from __future__ import annotations

import re
import threading

from flask import Flask

from gzsb.accounts.session import LOCK_AFTER, LOCK_FOR
from gzsb.extensions import db
from gzsb.models import Account
from tests.support import demo_student, new_applicant

THREADS = 24
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _client(app: Flask, i: int):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.20.{i // 250}.{i % 250 + 1}"  # past the per-IP limit
    token = TOKEN.search(client.get("/login").get_data(as_text=True))
    assert token
    return client, token.group(1)


def test_parallel_wrong_passwords_lock_the_account_after_the_limit(pg_app: Flask, clock) -> None:
    # The database lock is under test: the rate limiter's per-account budget must not answer first.
    pg_app.config["FAILURES_PER_ACCOUNT"] = "1000/15minutes"
    who = new_applicant(9001)
    login = demo_student(who.index).id_number
    clients = [_client(pg_app, i) for i in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    answers: list[str | BaseException | None] = [None] * THREADS

    def attempt(i: int) -> None:
        client, token = clients[i]
        try:
            barrier.wait(timeout=60)
            response = client.post("/login", data={"login": login, "password": f"Wrong#{i}x", "csrf_token": token})
            answers[i] = f"{response.status_code} " + (
                "locked" if "锁定" in response.get_data(as_text=True) else "wrong"
            )
        except BaseException as exc:  # noqa: BLE001 - every outcome is inspected below
            answers[i] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert sorted(map(str, answers)) == ["401 locked"] * (THREADS - LOCK_AFTER) + ["401 wrong"] * LOCK_AFTER

    db.session.expire_all()
    account = db.session.get(Account, who.account_id)
    assert account.failed_logins == LOCK_AFTER and account.locked_until is not None
    client, token = _client(pg_app, 999)
    right = client.post("/login", data={"login": login, "password": who.password, "csrf_token": token})
    assert right.status_code == 401 and "锁定" in right.get_data(as_text=True)
    clock.advance(seconds=LOCK_FOR.total_seconds() + 1)
    client, token = _client(pg_app, 998)
    assert (
        client.post("/login", data={"login": login, "password": who.password, "csrf_token": token}).status_code == 302
    )
