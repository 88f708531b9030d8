"""Photo checks before any comparison: sharp enough, head not turned, 证件照 3:4 and plain.

Everything here is numpy on an RGB array and the landmarks dlib's 5-point model gives
(right eye outer/inner corner, left eye outer/inner corner, the base of the nose); no
OpenCV, no deepface, so the web process runs these checks on the upload at once. Each
failed check is a ``FaceProblem`` with its own code and a Chinese reason that says how to
fix the photo.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gzsb.adapters.faces_base import Face, FaceProblem, Quality

log = logging.getLogger(__name__)

BLURRED = ("face too blurred", "照片模糊，请在光线充足处对焦后重新拍摄，不要使用翻拍或压缩过的图片", "blurred")
TURNED = ("head turned sideways", "头部偏转过大，请正对镜头、平视前方后重新拍摄", "turned")
TILTED = ("head tilted", "头部倾斜，请保持头部端正（双眼水平）后重新拍摄", "tilted")
BAD_ASPECT = (
    "ID photo is not about 3:4",
    "证件照比例不符，应为竖版、宽高比约3:4（如标准一寸/二寸照），请裁剪后上传",
    "aspect",
)
BUSY_BACKGROUND = (
    "ID photo background is not plain",
    "证件照背景不是纯色，请在白色、浅蓝色等单一颜色背景前拍摄",
    "background",
)
CHIP = 128  # the face chip's side for the sharpness measure: the same scale for every photo


@dataclass(frozen=True)
class QualityRules:
    min_sharpness: float = 40.0
    max_yaw: float = 0.18
    max_roll: float = 15.0
    aspect: tuple[float, float] = (0.6, 0.85)
    max_background: float = 15.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> QualityRules:
        low, high = config["FACE_PHOTO_ASPECT"]
        return cls(
            min_sharpness=float(config["FACE_MIN_SHARPNESS"]),
            max_yaw=float(config["FACE_MAX_YAW"]),
            max_roll=float(config["FACE_MAX_ROLL"]),
            aspect=(float(low), float(high)),
            max_background=float(config["FACE_MAX_BACKGROUND"]),
        )


def laplacian_variance(gray: Any) -> float:
    """Variance of the 4-neighbour Laplacian: low when edges are soft (blur, heavy JPEG)."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    lap = gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1] - 4 * gray[1:-1, 1:-1]
    return float(lap.var())


def sharpness(rgb: Any, face: Face) -> float:
    """Laplacian variance on the inner face brought to CHIP px (the upload's scale barely
    changes the answer; the inner 80 % keeps the background's edges out)."""
    import numpy as np
    from PIL import Image

    height, width = rgb.shape[:2]
    inset = round(0.1 * face.size)
    box = (
        max(face.left + inset, 0),
        max(face.top + inset, 0),
        min(face.right - inset, width),
        min(face.bottom - inset, height),
    )
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        return 0.0
    chip = Image.fromarray(np.ascontiguousarray(rgb[box[1] : box[3], box[0] : box[2]])).convert("L")
    # Down to CHIP px, never up: upscaling a small face would blur it and fail a sharp photo.
    side = min(CHIP, box[2] - box[0], box[3] - box[1])
    chip = chip.resize((side, side), Image.BILINEAR)
    return laplacian_variance(np.asarray(chip, dtype=np.float32))


def pose(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(yaw, roll) from dlib's 5 landmarks: yaw is how far the nose sits from the middle of
    the eyes, in eye distances (0 frontal, ~0.3 at 30°); roll the eye line's angle in degrees."""
    (r_out, r_in, l_out, l_in, nose) = points[:5]
    right = ((r_out[0] + r_in[0]) / 2, (r_out[1] + r_in[1]) / 2)
    left = ((l_out[0] + l_in[0]) / 2, (l_out[1] + l_in[1]) / 2)
    dx, dy = left[0] - right[0], left[1] - right[1]
    distance = math.hypot(dx, dy) or 1.0
    middle = ((right[0] + left[0]) / 2, (right[1] + left[1]) / 2)
    # The nose's offset along the eye line: independent of roll.
    along = ((nose[0] - middle[0]) * dx + (nose[1] - middle[1]) * dy) / distance
    roll = math.degrees(math.atan2(dy, dx))
    if roll > 90:
        roll -= 180
    elif roll < -90:
        roll += 180
    return along / distance, roll


def background(rgb: Any, face: Face) -> float:
    """Mean gradient (0–255) of the band above and beside the head, at the scale where the
    face is CHIP px (the same for every upload): a wall is ~2–10, a room, a shelf or a
    pattern 15 and more. The hair and shoulders are left out."""
    import numpy as np
    from PIL import Image

    scale = CHIP / max(face.size, 1)
    height, width = rgb.shape[:2]
    size = (max(round(width * scale), 4), max(round(height * scale), 4))
    gray = np.asarray(
        Image.fromarray(np.ascontiguousarray(rgb)).convert("L").resize(size, Image.BILINEAR), dtype=np.float32
    )
    grad = np.abs(np.diff(gray, axis=1))[:-1, :] + np.abs(np.diff(gray, axis=0))[:, :-1]
    mask = np.zeros(grad.shape, dtype=bool)
    margin = round(0.35 * CHIP)
    left, right = max(round(face.left * scale) - margin, 0), min(round(face.right * scale) + margin, grad.shape[1])
    top = max(round(face.top * scale) - margin, 0)
    bottom = min(round(face.bottom * scale), grad.shape[0])
    mask[:top, :] = True  # above the hair
    mask[:bottom, :left] = True  # beside the head, down to the chin
    mask[:bottom, right:] = True
    if mask.sum() < 0.02 * grad.size:
        return 0.0  # the face fills the photo: nothing to judge
    return float(grad[mask].mean())


def measure(rgb: Any, face: Face, points: Sequence[tuple[float, float]] | None) -> Quality:
    yaw, roll = pose(points) if points else (None, None)
    return Quality(sharpness(rgb, face), yaw, roll, background(rgb, face))


def first_problem(
    quality: Quality | None, rules: QualityRules, *, width: int, height: int, portrait: bool
) -> FaceProblem | None:
    """The first check the measured face fails (None: all passed). ``portrait`` adds the
    证件照's own checks (3:4, plain background)."""
    if portrait:
        ratio = width / height if height else 0.0
        if not rules.aspect[0] <= ratio <= rules.aspect[1]:
            return FaceProblem(f"{BAD_ASPECT[0]} ({ratio:.2f})", BAD_ASPECT[1], BAD_ASPECT[2])
    if quality is None:
        return None
    if quality.sharpness is not None and quality.sharpness < rules.min_sharpness:
        return FaceProblem(f"{BLURRED[0]} ({quality.sharpness:.1f})", BLURRED[1], BLURRED[2])
    if quality.roll is not None and abs(quality.roll) > rules.max_roll:
        return FaceProblem(f"{TILTED[0]} ({quality.roll:.1f}°)", TILTED[1], TILTED[2])
    if quality.yaw is not None and abs(quality.yaw) > rules.max_yaw:
        return FaceProblem(f"{TURNED[0]} ({quality.yaw:.2f})", TURNED[1], TURNED[2])
    if portrait and quality.background is not None and quality.background > rules.max_background:
        return FaceProblem(f"{BUSY_BACKGROUND[0]} ({quality.background:.1f})", BUSY_BACKGROUND[1], BUSY_BACKGROUND[2])
    return None
