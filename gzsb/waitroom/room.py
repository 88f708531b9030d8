"""The waiting room's shared state in Redis: one atomic Lua script per visit, no Flask.

Every node runs the same script on the same keys, so places, the admission rate and the
opening shuffle are one queue however many nodes serve it:

- before the opening (``opens``), visitors are collected in a set, without places;
- the first visit at or after the opening shuffles that set once (sorted by ticket first,
  so arrival order leaves no trace, then Fisher–Yates with a seed the caller supplies) and
  gives the collected visitors places 1…n; later visitors take the next place;
- an admission frontier moves forward at ``rate`` places per second (starting one second's
  worth ahead, so that without overload nobody waits); a visitor whose place the frontier
  has passed is admitted, unless ``cap`` admitted visitors were seen within the admission
  lifetime (the frontier then stands still).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

log = logging.getLogger(__name__)

# Settings an admin may change at run time (`flask waitroom …`), stored in one Redis hash.
SETTING_KEYS = ("enabled", "rate", "cap", "opens", "admit_seconds")


@dataclass(frozen=True)
class Settings:
    enabled: bool = False
    rate: float = 50.0  # admissions per second over all nodes
    cap: int = 0  # admitted visitors seen within admit_seconds; 0: no cap
    opens: float = 0.0  # Unix time of the opening; 0: none (no pre-opening shuffle)
    admit_seconds: int = 1800  # lifetime of an admission (renewed while the visitor is active)

    def overlaid(self, stored: Mapping[str, Any]) -> Settings:
        """These defaults with the values an admin stored in Redis."""
        values: dict[str, Any] = {}
        for key in SETTING_KEYS:
            raw = stored.get(key)
            if raw is None or raw == "":
                continue
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            kind = type(getattr(self, key))
            values[key] = text == "1" if kind is bool else kind(float(text)) if kind is int else kind(text)
        return replace(self, **values)


@dataclass(frozen=True)
class Verdict:
    """``off`` (room switched off), ``admit``, ``wait`` (with a place) or ``early`` (before the opening)."""

    status: str
    ahead: int = 0  # visitors before this one (wait), or visitors collected so far (early)
    wait_seconds: float = 0.0  # estimate until admission (wait), or until the opening (early)


_VISIT = """
local now = tonumber(ARGV[1])
local ticket = ARGV[2]
local s = redis.call('HMGET', KEYS[1], 'enabled', 'rate', 'cap', 'opens', 'admit_seconds')
local enabled = s[1] or ARGV[3]
if enabled ~= '1' then return {'off', '0', '0'} end
local rate = tonumber(s[2] or ARGV[4])
local cap = tonumber(s[3] or ARGV[5])
local opens = tonumber(s[4] or ARGV[6])
local ttl = tonumber(s[5] or ARGV[7])
local burst = math.max(1, rate)
local st = redis.call('HMGET', KEYS[4], 'tail', 'frontier', 'at', 'opened')
-- Once any node has opened, a node whose clock is a little behind does not collect any more.
if opens > 0 and now < opens and st[4] ~= '1' then
  redis.call('SADD', KEYS[3], ticket)
  return {'early', tostring(redis.call('SCARD', KEYS[3])), tostring(opens - now)}
end
local tail = tonumber(st[1] or '0')
local frontier = tonumber(st[2] or burst)
local at = tonumber(st[3] or (opens > 0 and opens or now))
if st[4] ~= '1' then
  -- The opening: shuffle the collected visitors once. Sorting first removes the set's own
  -- order (small sets iterate in insertion order, i.e. arrival order).
  local early = redis.call('SMEMBERS', KEYS[3])
  table.sort(early)
  math.randomseed(tonumber(ARGV[8]))
  for i = #early, 2, -1 do
    local j = math.random(i)
    early[i], early[j] = early[j], early[i]
  end
  for i = 1, #early do
    tail = tail + 1
    redis.call('ZADD', KEYS[2], tail, early[i])
  end
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[4], 'opened', '1', 'shuffled', tostring(#early))
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - ttl)
local active = redis.call('ZCARD', KEYS[5])
local open = cap <= 0 or active < cap
if now > at then
  if open then frontier = math.min(frontier + (now - at) * rate, tail + burst) end
  at = now
end
local place = redis.call('ZSCORE', KEYS[2], ticket)
if place then
  place = tonumber(place)
else
  tail = tail + 1
  place = tail
  redis.call('ZADD', KEYS[2], place, ticket)
end
redis.call('HSET', KEYS[4], 'tail', tostring(tail), 'frontier', tostring(frontier), 'at', tostring(at))
if place <= frontier and open then
  redis.call('ZREM', KEYS[2], ticket)
  redis.call('ZADD', KEYS[5], now, ticket)
  return {'admit', '0', '0'}
end
local ahead = math.max(0, math.ceil(place - frontier) - 1)
return {'wait', tostring(ahead), tostring((place - frontier) / rate)}
"""


class Room:
    """The queue on one Redis. ``seed`` gives the opening shuffle its randomness (tests fix it)."""

    def __init__(
        self,
        redis: Any,
        defaults: Settings,
        *,
        prefix: str = "gzsb:wr:",
        seed: Callable[[], int] = lambda: secrets.randbelow(2**31),
    ) -> None:
        self.redis = redis
        self.defaults = defaults
        self.seed = seed
        self.keys = [prefix + name for name in ("settings", "queue", "early", "state", "active")]
        self._visit = redis.register_script(_VISIT)

    # ---------------------------------------------------------------- settings

    def settings(self) -> Settings:
        stored = self.redis.hgetall(self.keys[0])
        return self.defaults.overlaid({(k.decode() if isinstance(k, bytes) else k): v for k, v in stored.items()})

    def store(self, **values: Any) -> Settings:
        """Admin overrides (``flask waitroom …``); None removes one (back to the config)."""
        unknown = set(values) - set(SETTING_KEYS)
        if unknown:
            raise ValueError(f"unknown waiting room settings {sorted(unknown)}; known: {', '.join(SETTING_KEYS)}")
        for key, value in values.items():
            if value is None:
                self.redis.hdel(self.keys[0], key)
            else:
                self.redis.hset(self.keys[0], key, "1" if value is True else "0" if value is False else str(value))
        return self.settings()

    # ---------------------------------------------------------------- visits

    def visit(self, ticket: str, now: float) -> Verdict:
        d = self.defaults
        args = [now, ticket, "1" if d.enabled else "0", d.rate, d.cap, d.opens, d.admit_seconds, self.seed()]
        status, first, second = self._visit(keys=self.keys, args=args)
        return Verdict(status.decode() if isinstance(status, bytes) else status, int(first), float(second))

    def touch(self, ticket: str, now: float) -> None:
        """An admitted visitor is still active (counts against the cap)."""
        self.redis.zadd(self.keys[4], {ticket: now})

    def place(self, ticket: str) -> int | None:
        """The ticket's place in the queue (None: not queued, collected or admitted)."""
        score = self.redis.zscore(self.keys[1], ticket)
        return None if score is None else int(score)

    # ---------------------------------------------------------------- operators

    def stats(self) -> dict[str, Any]:
        state = {k.decode(): v.decode() for k, v in self.redis.hgetall(self.keys[3]).items()}
        return {
            "collected_before_opening": self.redis.scard(self.keys[2]),
            "waiting": self.redis.zcard(self.keys[1]),
            "admitted_active": self.redis.zcard(self.keys[4]),
            "opened": state.get("opened") == "1",
            "places_given": int(float(state.get("tail", 0))),
            "frontier": float(state.get("frontier", 0)),
        }

    def reset(self) -> None:
        """Forget every visitor and the opening (settings stay)."""
        self.redis.delete(*self.keys[1:])
