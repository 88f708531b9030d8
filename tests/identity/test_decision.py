"""The three-way face decision with planted distances: no Flask, no dlib, no database."""

from __future__ import annotations

import pytest

from gzsb.adapters.faces import BAND_LABELS, MISMATCH, PASS, REVIEW, MatchResult, Thresholds, thresholds_for
from gzsb.config import Config, _face_thresholds
from gzsb.errors import ConfigurationError

pytestmark = pytest.mark.unit

DLIB = Thresholds(0.415, 0.55)
EPS = 1e-6


@pytest.mark.parametrize(
    ("distance", "band"),
    [
        (0.0, PASS),
        (0.30, PASS),
        (0.415 - EPS, PASS),
        (0.415, PASS),  # at the auto-pass threshold: still a match
        (0.415 + EPS, REVIEW),  # just above: never a silent accept
        (0.48, REVIEW),
        (0.55 - EPS, REVIEW),
        (0.55, REVIEW),  # at the review threshold: staff look
        (0.55 + EPS, MISMATCH),
        (0.60, MISMATCH),  # dlib's own threshold used to accept this
        (1.2, MISMATCH),
    ],
)
def test_bands_at_and_around_both_thresholds(distance: float, band: str) -> None:
    assert DLIB.band(distance) == band
    result = MatchResult(distance, DLIB, "Dlib")
    assert result.band == band and result.matched is (band == PASS)
    assert result.reason == ("" if band == PASS else BAND_LABELS[band])


def test_the_history_payload_says_model_thresholds_distance_and_band() -> None:
    assert MatchResult(0.47123, DLIB, "Dlib").payload() == {
        "matched": False,
        "band": "review",
        "distance": 0.4712,
        "threshold": 0.415,
        "review_threshold": 0.55,
        "model": "Dlib",
        "reason": "待人工复核",
    }


@pytest.mark.parametrize(("auto_pass", "review"), [(0.55, 0.415), (0.5, 0.5), (0.0, 0.5), (-0.1, 0.3)])
def test_thresholds_must_be_ordered(auto_pass: float, review: float) -> None:
    with pytest.raises(ConfigurationError, match="0 < auto-pass < review"):
        Thresholds(auto_pass, review)


def test_every_model_needs_its_own_calibrated_thresholds() -> None:
    table = {"Dlib": (0.415, 0.55)}
    assert thresholds_for(table, "Dlib") == DLIB
    with pytest.raises(ConfigurationError, match="no face thresholds for model 'ArcFace'.*known: Dlib"):
        thresholds_for(table, "ArcFace")
    with pytest.raises(ConfigurationError, match="must be \\(auto_pass, review\\)"):
        thresholds_for({"Dlib": "0.4"}, "Dlib")


def test_the_configured_default_and_its_environment_format() -> None:
    assert thresholds_for(Config.FACE_THRESHOLDS, Config.FACE_MODEL) == DLIB
    assert _face_thresholds("Dlib=0.4:0.5; Facenet512 = 0.2:0.3;") == {"Dlib": (0.4, 0.5), "Facenet512": (0.2, 0.3)}
