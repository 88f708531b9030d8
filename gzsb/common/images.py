"""Image checks for uploads and imported photos: size cap before reading, JPEG/PNG by magic
bytes, pixel cap from the header before decoding, JPEGs decoded at a reduced size, a bounded
number of decodes at once per process, then re-encoded without any metadata (EXIF and its
GPS position, comments, ICC profiles, XMP, PNG text chunks)."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from gzsb.config import Config
from gzsb.errors import ServiceUnavailable

log = logging.getLogger(__name__)


MAX_PHOTO_BYTES = 2 * 1024 * 1024
MAX_PIXELS = Config.UPLOAD_MAX_PIXELS
MAX_SIDE = Config.UPLOAD_MAX_SIDE
BUSY = "系统繁忙，图片处理排队已满，请稍后重新上传"


class DecodeSlots:
    """At most ``size`` decodes at once; a request waits ``wait_seconds`` for a slot, then
    gets the 503 page (four bombs at once must not starve every other request)."""

    def __init__(self, size: int, wait_seconds: float) -> None:
        self._slots = threading.BoundedSemaphore(max(size, 1))
        self.wait_seconds = wait_seconds

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.wait_seconds):
            log.warning("image decode refused: all decode slots busy for %.1f s", self.wait_seconds)
            raise ServiceUnavailable("all image decode slots are busy", public=BUSY)
        try:
            yield
        finally:
            self._slots.release()


DECODE_SLOTS = DecodeSlots(Config.IMAGE_DECODE_CONCURRENCY, Config.IMAGE_DECODE_WAIT_SECONDS)
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


def clean_image(
    data: bytes, *, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE, slots: DecodeSlots | None = None
) -> tuple[bytes, str]:
    """Check and re-encode a JPEG or PNG (longer side at most ``max_side``); (bytes, kind)."""
    from PIL import Image, UnidentifiedImageError

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
            with (slots or DECODE_SLOTS).hold():
                image = _decode(probe, max_side)
    except (ImageProblem, ServiceUnavailable):
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageProblem(f"cannot be decoded ({exc.__class__.__name__})", "图片文件已损坏，无法识别") from None
    return _encode(image, kind), kind


def _decode(probe: Any, max_side: int) -> Any:
    from PIL import Image, ImageOps

    if probe.format == "JPEG":
        # The JPEG decoder scales by 1/2, 1/4, 1/8 while decoding: far less work and memory.
        probe.draft(probe.mode if probe.mode in ("RGB", "L") else "RGB", (max_side, max_side))
    probe.load()
    # Phones store portrait shots sideways plus an EXIF rotation; apply it before the
    # re-encoding drops EXIF, or the picture would be stored lying on its side.
    image = ImageOps.exif_transpose(probe) or probe.copy()
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return image


def _encode(image: Any, kind: str) -> bytes:
    """Pixels only: Pillow writes back what ``info`` holds (JPEG comments, ICC, XMP, EXIF)."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    image.info = {}
    out = io.BytesIO()
    if kind == "jpeg":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
            image.info = {}
        image.save(out, "JPEG", quality=90)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()
