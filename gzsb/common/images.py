"""Image checks for uploads and imported photos: size cap before reading, JPEG/PNG by magic
bytes, pixel cap before decoding, then re-encoded (which also drops EXIF metadata such as
GPS positions)."""

from __future__ import annotations

import io
import logging
from typing import BinaryIO

log = logging.getLogger(__name__)


MAX_PHOTO_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 40_000_000
_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"))
MIMETYPES = {"jpeg": "image/jpeg", "png": "image/png"}
EXTENSIONS = {"jpeg": "jpg", "png": "png"}


class ImageProblem(ValueError):
    """An image was refused; ``english`` for CLIs and logs, ``chinese`` for students."""

    def __init__(self, english: str, chinese: str) -> None:
        super().__init__(english)
        self.english = english
        self.chinese = chinese


def image_kind(head: bytes) -> str | None:
    """'jpeg' or 'png' from the first bytes, else None (the file name is never trusted)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def read_capped(stream: BinaryIO, max_bytes: int) -> bytes:
    """At most ``max_bytes``; one byte more means the file is too large."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        if max_bytes >= 1024 * 1024:
            limit = f"{max_bytes // (1024 * 1024)}MB"
        else:
            limit = f"{max_bytes // 1024}KB" if max_bytes >= 1024 else f"{max_bytes}B"
        raise ImageProblem(f"larger than {limit}", f"图片不能超过{limit}")
    return data


def clean_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> tuple[bytes, str]:
    """Check and re-encode a JPEG or PNG; returns (bytes, kind)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    kind = image_kind(data[:8])
    if kind is None:
        raise ImageProblem("not a JPEG or PNG file", "仅支持JPG或PNG格式的图片")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            # Only the header is read so far: refuse decompression bombs before decoding.
            width, height = probe.size
            if width * height > max_pixels or width < 1 or height < 1:
                raise ImageProblem(f"{width}x{height} pixels is too large", "图片尺寸过大")
            if probe.format not in ("JPEG", "PNG") or probe.format.lower() != kind:
                raise ImageProblem("content does not match its JPEG/PNG signature", "图片文件已损坏或格式不符")
            probe.load()
            # Phones store portrait shots sideways plus an EXIF rotation; apply it before the
            # re-encoding drops EXIF, or the picture would be stored lying on its side.
            image = ImageOps.exif_transpose(probe) or probe.copy()
    except ImageProblem:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageProblem(f"cannot be decoded ({exc.__class__.__name__})", "图片文件已损坏，无法识别") from None
    out = io.BytesIO()
    if kind == "jpeg":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=90)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue(), kind
