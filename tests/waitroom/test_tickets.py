"""Signed admissions: HMAC with the app's secret, expiry, nothing else accepted."""

from __future__ import annotations

import pytest

from gzsb.waitroom.tickets import Admission, Signer, new_ticket, valid_ticket

pytestmark = pytest.mark.unit


def test_an_admission_verifies_until_it_expires_and_only_with_the_same_secret() -> None:
    ticket = new_ticket()
    assert valid_ticket(ticket) == ticket
    value = Signer("secret").sign(ticket, 1000)
    assert Signer("secret").verify(value, 999) == Admission(ticket, 1000)
    assert Signer("secret").verify(value, 1000) is None
    assert Signer("another secret").verify(value, 999) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v.replace(".1000.", ".2000."),
        lambda v: "B" + v[1:],
        lambda v: v[:-2],
        lambda v: v + "0",
        lambda v: v.replace(".", "", 1),
        lambda v: "",
        lambda v: "x" * 500,
    ],
)
def test_any_change_is_refused(change) -> None:  # type: ignore[no-untyped-def]
    value = Signer("secret").sign("A" * 22, 1000)
    assert Signer("secret").verify(change(value), 10) is None


def test_tickets_are_checked_for_shape() -> None:
    assert valid_ticket(None) is None
    assert valid_ticket("short") is None
    assert valid_ticket("a" * 21 + ";") is None
    assert len({new_ticket() for _ in range(100)}) == 100
