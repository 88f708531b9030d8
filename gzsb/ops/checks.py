"""Settings that only hold on one node, named at start-up so that a multi-node deployment
does not silently keep per-node state."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def single_node_settings(config: Mapping[str, Any]) -> list[str]:
    """What would differ between nodes (or processes) with these settings."""
    found = []
    if str(config.get("RATELIMIT_STORAGE_URI", "")).startswith("memory://"):
        found.append("RATELIMIT_STORAGE_URI=memory:// keeps rate limits per process (set REDIS_URL)")
    if config.get("STORAGE_BACKEND") == "local":
        found.append("STORAGE_BACKEND=local keeps uploads on this node's disk (use database)")
    if not config.get("REDIS_URL"):
        found.append("no REDIS_URL: the task queue is a SQLite file on this node")
    return found


def warn_single_node(config: Mapping[str, Any]) -> None:
    """Outside development, log each per-node setting once at start-up (one node is a valid setup)."""
    if config.get("ENV") == "development":
        return
    for problem in single_node_settings(config):
        log.warning("single-node setting: %s", problem)
