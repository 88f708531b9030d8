"""``same_json`` (data_changes' comparison) answers exactly what comparing the canonical
encodings answers: the hash binds ``changes``, so a key must never be judged otherwise."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gzsb.workflow.history import Redactor, canonical, data_changes, same_json

scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.sampled_from(["", "a", "考"])
keys = st.sampled_from(["a", "b", "状态"])
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3)
)

TRICKY: list[tuple[Any, Any]] = [
    (1, 1.0),
    (True, 1),
    (False, 0),
    (0.0, -0.0),
    (math.nan, math.nan),
    ({"a": 1}, {"a": 1.0}),
    ({"a": [1, 2]}, {"a": (1, 2)}),
    ([1, 2], (1, 2)),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ({1: "x"}, {"1": "x"}),
    (OrderedDict(a=1), {"a": 1}),
    ({"a": None}, {}),
    ("1", 1),
    ([[]], [{}]),
]


@pytest.mark.parametrize(("a", "b"), TRICKY)
def test_tricky_pairs_agree_with_the_encoding(a: Any, b: Any) -> None:
    assert same_json(a, b) == (canonical(a) == canonical(b))
    assert same_json(b, a) == (canonical(b) == canonical(a))


@settings(max_examples=400, deadline=None)
@given(json_values, json_values)
def test_any_two_values_agree_with_the_encoding(a: Any, b: Any) -> None:
    assert same_json(a, b) == (canonical(a) == canonical(b))
    assert same_json(a, a)


def test_data_changes_names_only_changed_keys() -> None:
    redactor = Redactor("k" * 32, set())
    before = {"x": {"n": 1}, "y": [1, 2], "z": 0.0}
    after = {"x": {"n": 1}, "y": [1, 2, 3], "z": -0.0, "w": True}
    assert data_changes(before, after, redactor) == canonical({"set": {"y": [1, 2, 3], "z": -0.0, "w": True}})
