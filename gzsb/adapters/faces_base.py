"""What a face matcher is and returns: the interface of ``gzsb.adapters.faces``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gzsb.errors import ConfigurationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quality:
    """Measures of one face (None: not measured, e.g. no landmarks)."""

    sharpness: float | None = None
    yaw: float | None = None
    roll: float | None = None
    background: float | None = None

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in vars(self).items() if v is not None}


class FaceProblem(Exception):
    """An image is not usable for a face match: English for logs, Chinese for the student."""

    def __init__(self, english: str, chinese: str, code: str) -> None:
        super().__init__(english)
        self.english = english
        self.chinese = chinese
        self.code = code


NO_FACE = ("no face found", "未检测到人脸，请上传正面、清晰、光线均匀的照片", "no_face")
MANY_FACES = ("more than one face", "检测到多张人脸，请确保照片中只有本人", "many_faces")
PARTIAL_FACE = ("face cut at the image edge", "人脸不完整，请确保整张脸都在照片内", "partial_face")
SMALL_FACE = ("face too small", "人脸过小，请靠近拍摄或裁剪后重新上传", "small_face")


# The three outcomes of a comparison (the band the distance falls in).
PASS, REVIEW, MISMATCH = "pass", "review", "mismatch"
BAND_LABELS = {PASS: "认证成功", REVIEW: "待人工复核", MISMATCH: "人脸不一致"}


@dataclass(frozen=True)
class Thresholds:
    """Two distances per model: up to ``auto_pass`` the faces match; up to ``review`` staff
    look at both images; above it they do not match. Calibrated on East Asian faces."""

    auto_pass: float
    review: float

    def __post_init__(self) -> None:
        if not 0 < self.auto_pass < self.review:
            raise ConfigurationError(
                f"face thresholds must satisfy 0 < auto-pass < review, got auto-pass {self.auto_pass} "
                f"and review {self.review} (FACE_THRESHOLDS in gzsb/config.py)"
            )

    def band(self, distance: float) -> str:
        """Which outcome a distance gives: never an accept above ``auto_pass``."""
        if distance <= self.auto_pass:
            return PASS
        if distance <= self.review:
            return REVIEW
        return MISMATCH


def thresholds_for(table: Mapping[str, Any], model: str) -> Thresholds:
    """The thresholds of ``model`` in FACE_THRESHOLDS ({model: (auto_pass, review)}); a model
    without calibrated thresholds is a configuration error, never a silent default."""
    if model not in table:
        raise ConfigurationError(
            f"no face thresholds for model {model!r}: calibrate it and add it to FACE_THRESHOLDS "
            f"(known: {', '.join(sorted(table)) or 'none'})"
        )
    value = table[model]
    try:
        auto_pass, review = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"FACE_THRESHOLDS[{model!r}] must be (auto_pass, review), got {value!r}") from None
    return Thresholds(auto_pass, review)


@dataclass(frozen=True)
class Face:
    """A face box in the uploaded image's pixels; may reach past the edges (a cut face)."""

    left: int
    top: int
    right: int
    bottom: int
    score: float = 0.0

    @property
    def size(self) -> int:
        return min(self.right - self.left, self.bottom - self.top)


@dataclass(frozen=True)
class Located:
    """The one face as the detector saw it on the copy at most ``max_side`` px long: dlib's
    integer box and 5 landmarks, all the match needs to cut the aligned chip without a second
    HOG pass (the same integers give the same chip, so the same distance)."""

    max_side: int
    box: tuple[int, int, int, int]  # left, top, right, bottom
    points: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        """As stored on the upload's row (JSON), for the face-match job in another process."""
        return {"max_side": self.max_side, "box": list(self.box), "points": [list(p) for p in self.points]}

    @classmethod
    def from_dict(cls, found: Mapping[str, Any] | None) -> Located | None:
        """Back from the row; None for a missing or malformed value (the match detects again)."""
        try:
            box = tuple(int(v) for v in found["box"])  # type: ignore[index]
            points = tuple((int(x), int(y)) for x, y in found["points"])  # type: ignore[index]
            located = cls(int(found["max_side"]), box, points)  # type: ignore[arg-type,index]
        except (TypeError, KeyError, ValueError):
            return None
        return located if len(box) == 4 else None


@dataclass(frozen=True)
class Detection:
    width: int
    height: int
    faces: tuple[Face, ...]
    millis: float = 0.0
    quality: Quality | None = None  # measured when there is exactly one face (faces_quality)
    located: Located | None = None  # when there is exactly one face: what verify can reuse

    def problem(self, min_size: int) -> FaceProblem | None:
        """Why this image cannot be matched, or None: exactly one whole face of min_size."""
        if not self.faces:
            return FaceProblem(*NO_FACE)
        if len(self.faces) > 1:
            return FaceProblem(*MANY_FACES)
        face = self.faces[0]
        # A few pixels of slack: dlib's box may graze the edge of a tightly cropped photo.
        slack = max(2, round(0.02 * face.size))
        if (
            face.left < -slack
            or face.top < -slack
            or face.right > self.width + slack
            or face.bottom > self.height + slack
        ):
            return FaceProblem(*PARTIAL_FACE)
        if face.size < min_size:
            return FaceProblem(*SMALL_FACE)
        return None


@dataclass(frozen=True)
class MatchResult:
    distance: float
    thresholds: Thresholds
    model: str
    faces: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds: decode, detect, embed, total

    @property
    def band(self) -> str:
        return self.thresholds.band(self.distance)

    @property
    def matched(self) -> bool:
        return self.band == PASS

    @property
    def threshold(self) -> float:
        """The auto-pass threshold: ``matched`` means distance ≤ threshold."""
        return self.thresholds.auto_pass

    @property
    def reason(self) -> str:
        return "" if self.matched else BAND_LABELS[self.band]

    def payload(self) -> dict[str, Any]:
        """What the face_matched / face_review / face_mismatch step records in the history."""
        return {
            "matched": self.matched,
            "band": self.band,
            "distance": round(float(self.distance), 4),
            "threshold": self.thresholds.auto_pass,
            "review_threshold": self.thresholds.review,
            "model": self.model,
            "reason": self.reason,
        }


class FaceMatcher(Protocol):
    name: str

    def detect(self, image: bytes) -> Detection: ...

    def verify(self, photo: bytes, id_card: bytes, located: Mapping[str, Located] | None = None) -> MatchResult: ...


@dataclass(frozen=True)
class FaceSettings:
    model: str = "Dlib"
    detector: str = "dlib"
    metric: str = "euclidean"
    thresholds: Thresholds = Thresholds(0.415, 0.55)
    max_side: int = 640
    min_size: int = 64
    home: str = ""
    fake_delay: float = 0.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FaceSettings:
        return cls(
            model=config["FACE_MODEL"],
            detector=config["FACE_DETECTOR"],
            metric=config["FACE_DISTANCE_METRIC"],
            thresholds=thresholds_for(config["FACE_THRESHOLDS"], config["FACE_MODEL"]),
            max_side=int(config["FACE_DETECT_MAX_SIDE"]),
            min_size=int(config["FACE_MIN_SIZE"]),
            home=str(config["DEEPFACE_HOME"]),
            fake_delay=float(config.get("FACE_FAKE_DELAY", 0.0)),
        )
