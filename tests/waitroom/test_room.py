"""The queue on a real Redis: the opening shuffle, the admission rate, the active cap."""

from __future__ import annotations

import random
import statistics
import threading
from collections.abc import Callable

from gzsb.waitroom.room import Room

OPENS = 1_800_000_000.0  # a fixed Unix time; the room takes the clock from its caller


def ordered_tickets(n: int, trial: int) -> list[str]:
    # Lexical order == arrival order: if the room kept any trace of either, places would follow it.
    return [f"t{trial:05d}x{i:015d}" for i in range(n)]


def places_after_opening(room: Room, tickets: list[str]) -> list[int]:
    for offset, ticket in enumerate(tickets):
        assert room.visit(ticket, OPENS - 100 + offset).status == "early"
    room.visit("opener-ticket-after-opening", OPENS + 1)
    places = [room.place(ticket) for ticket in tickets]
    assert None not in places
    return [p for p in places if p is not None]


def spearman(xs: list[int], ys: list[int]) -> float:
    n = len(xs)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(xs, ys, strict=True)) / (n * (n * n - 1))


def test_pre_opening_arrivals_get_a_random_order_not_arrival_order(make_room: Callable[..., Room]) -> None:
    # 300 openings of 20 visitors each, seeds fixed: where the first arrival ends up is uniform
    # and arrival order does not predict places.
    n, trials = 20, 300
    first_places, correlations = [], []
    seeds = random.Random(17)
    for trial in range(trials):
        room = make_room(seed=seeds.randrange(2**31), enabled=True, rate=0.001, opens=OPENS)
        room.reset()
        places = places_after_opening(room, ordered_tickets(n, trial))
        assert sorted(places) == list(range(1, n + 1))  # places 1…n, each once
        first_places.append(places[0])
        correlations.append(spearman(list(range(1, n + 1)), places))
    # The first arrival's place by quarter: 75 expected in each; chi-square, 3 d.f., p = 0.001 at 16.3.
    quarters = [sum(1 for p in first_places if (p - 1) * 4 // n == q) for q in range(4)]
    chi2 = sum((count - trials / 4) ** 2 / (trials / 4) for count in quarters)
    assert chi2 < 16.3, quarters
    # Rank correlation of arrival and place: mean ~0 (sd of the mean ≈ 0.23/√300 ≈ 0.013).
    assert abs(statistics.fmean(correlations)) < 0.06
    assert sum(1 for p in first_places if p == 1) < trials / 5  # not first-click


def test_the_shuffle_happens_once_across_nodes(make_room: Callable[..., Room]) -> None:
    node_a = make_room(seed=11, enabled=True, rate=0.001, opens=OPENS)
    node_b = make_room(seed=99, enabled=True, rate=0.001, opens=OPENS)
    tickets = ordered_tickets(30, 0)
    for i, ticket in enumerate(tickets):
        (node_a if i % 2 else node_b).visit(ticket, OPENS - 50)
    # Eight visitors on both nodes at the opening, at once: one shuffle, places 1…30 each once.
    barrier = threading.Barrier(8)

    def arrive(k: int) -> None:
        barrier.wait()
        (node_a if k % 2 else node_b).visit(tickets[k], OPENS + 0.5)

    threads = [threading.Thread(target=arrive, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after_first = {t: node_a.place(t) for t in tickets}
    queued = [p for p in after_first.values() if p is not None]
    assert len(queued) == 30 - 1  # the burst admitted the first place
    node_b.visit("a-later-visitor-00000001", OPENS + 2)
    assert {t: node_a.place(t) for t in tickets} == after_first
    assert node_a.place("a-later-visitor-00000001") == 31  # after everybody who came early
    # A node whose clock is a second behind queues newcomers too, instead of collecting them.
    assert node_b.visit("a-slow-clock-visitor-001", OPENS - 1).status == "wait"
    assert node_a.place("a-slow-clock-visitor-001") == 32
    assert node_a.stats()["opened"] is True


def test_admission_follows_the_rate_on_a_fake_clock(make_room: Callable[..., Room]) -> None:
    room = make_room(enabled=True, rate=2.0)
    start = 1_000_000.0
    tickets = [f"visitor-{i:014d}" for i in range(40)]
    admitted: list[str] = []
    first = [room.visit(t, start) for t in tickets]
    admitted += [t for t, v in zip(tickets, first, strict=True) if v.status == "admit"]
    assert len(admitted) == 2  # one second's worth at once
    waiting = [v for v in first if v.status == "wait"]
    assert [v.ahead for v in waiting[:3]] == [0, 1, 2]
    assert waiting[-1].wait_seconds == (40 - 2) / 2.0  # the estimate: places ahead / rate
    for second in range(1, 11):
        for t in tickets:
            if t not in admitted and room.visit(t, start + second).status == "admit":
                admitted.append(t)
        assert len(admitted) == 2 + 2 * second
    assert admitted == tickets[: len(admitted)]  # in the order of places
    # No credit piles up while the queue is empty: after a quiet hour still one second's worth.
    for t in tickets:
        room.visit(t, start + 30)
    later = [room.visit(f"late-visitor-{i:013d}", start + 3600).status for i in range(5)]
    assert later == ["admit", "admit", "wait", "wait", "wait"]


def test_the_active_cap_holds_admissions_until_admissions_expire(make_room: Callable[..., Room]) -> None:
    room = make_room(enabled=True, rate=100.0, cap=3, admit_seconds=600)
    start = 2_000_000.0
    verdicts = [room.visit(f"capped-visitor-{i:011d}", start).status for i in range(6)]
    assert verdicts == ["admit"] * 3 + ["wait"] * 3
    assert room.visit("capped-visitor-00000000003", start + 300).status == "wait"
    room.touch("capped-visitor-00000000000", start + 300)  # still active: keeps its seat
    # Two admissions lapsed, the touched one did not: two seats free.
    assert room.visit("capped-visitor-00000000003", start + 601).status == "admit"
    assert room.visit("capped-visitor-00000000004", start + 601).status == "admit"
    assert room.visit("capped-visitor-00000000005", start + 601).status == "wait"


def test_switched_off_the_room_lets_everybody_through_and_settings_override(make_room: Callable[..., Room]) -> None:
    room = make_room(enabled=False, rate=0.001)
    assert room.visit("someone-0000000000000001", 10.0).status == "off"
    settings = room.store(enabled=True, rate=5, cap=7)
    assert (settings.enabled, settings.rate, settings.cap) == (True, 5.0, 7)
    assert room.visit("someone-0000000000000001", 10.0).status == "admit"
    assert room.store(rate=None).rate == 0.001  # back to the configured default
