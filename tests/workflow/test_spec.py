from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gzsb.common.beijing import beijing_text
from gzsb.workflow.spec import WindowSpec

OPENS = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)
WINDOW = WindowSpec("registration", OPENS, OPENS + timedelta(days=57))


def test_window_phase_boundaries() -> None:
    tick = timedelta(microseconds=1)
    assert WINDOW.phase(OPENS - tick) == "upcoming"
    assert WINDOW.phase(OPENS) == "open"
    assert WINDOW.phase(WINDOW.closes - tick) == "open"
    assert WINDOW.phase(WINDOW.closes) == "closed"


def test_beijing_text_reads_naive_times_as_utc() -> None:
    assert beijing_text(OPENS) == "2026年11月16日 09:00"
    assert beijing_text(OPENS.replace(tzinfo=None)) == "2026年11月16日 09:00"
