"""The settings that keep state on one node are named."""

from __future__ import annotations

import pytest

from gzsb.ops.checks import single_node_settings

pytestmark = pytest.mark.unit


def test_the_embedded_defaults_are_single_node() -> None:
    found = single_node_settings({"RATELIMIT_STORAGE_URI": "memory://", "STORAGE_BACKEND": "local", "REDIS_URL": ""})
    assert [line.split(" ")[0] for line in found] == ["RATELIMIT_STORAGE_URI=memory://", "STORAGE_BACKEND=local", "no"]


def test_a_shared_deployment_has_none() -> None:
    shared = {
        "RATELIMIT_STORAGE_URI": "redis://r:6379/0",
        "STORAGE_BACKEND": "database",
        "REDIS_URL": "redis://r:6379/0",
    }
    assert single_node_settings(shared) == []
