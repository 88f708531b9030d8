"""Beijing time for what people read; UTC for what is stored and compared."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")
MINUTES = "%Y年%m月%d日 %H:%M"


def beijing_text(moment: datetime, fmt: str = MINUTES) -> str:
    return as_utc(moment).astimezone(BEIJING).strftime(fmt)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
