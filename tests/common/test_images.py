"""Image decoding under attack: decompression bombs, metadata, concurrent decodes."""

from __future__ import annotations

import io
import struct
import threading
import time
import tracemalloc
import zlib

import pytest
from PIL import Image

from gzsb.common.images import DecodeSlots, ImageProblem, clean_image
from gzsb.common.uploads import accept_image
from gzsb.config import Config
from gzsb.errors import ServiceUnavailable

MB = 1024 * 1024


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(side: int = 6300) -> bytes:
    """A grey PNG of side×side pixels that compresses to ~100 KB (the attack's file)."""
    packer = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + one byte per pixel
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_the_decompression_bomb_is_refused_quickly_and_cheaply() -> None:
    data = bomb_png()
    assert len(data) < 200 * 1024
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ImageProblem) as refused:
        accept_image(data, max_bytes=8 * MB, max_pixels=Config.UPLOAD_MAX_PIXELS)
    elapsed = time.perf_counter() - started
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "图片尺寸过大" in refused.value.chinese
    # Generous bounds (a correctness check, not a benchmark): decoding it costs seconds and
    # ~40 MB; reading the header costs milliseconds and a few kilobytes.
    assert elapsed < 0.5, elapsed
    assert peak < 5 * MB, peak


def test_the_default_pixel_cap_is_what_a_photo_needs() -> None:
    assert Config.UPLOAD_MAX_PIXELS <= 12_000_000 < 6300 * 6300


def test_a_large_jpeg_is_decoded_reduced_and_stored_smaller() -> None:
    out = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 200, 30)).save(out, "JPEG")
    data, kind = clean_image(out.getvalue(), max_pixels=12_000_000, max_side=1600)
    with Image.open(io.BytesIO(data)) as stored:
        assert kind == "jpeg" and max(stored.size) <= 1600 and stored.size[0] > stored.size[1]


def _jpeg_with_metadata() -> bytes:
    exif = Image.Exif()
    gps = {1: "N", 2: (39.0, 7.0, 0.0), 3: "E", 4: (117.0, 12.0, 0.0)}
    exif[0x8825] = gps  # GPSInfo
    exif[0x010F] = "SpyPhone"  # Make
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(out, "JPEG", exif=exif, comment=b"secret-comment-42")
    data = out.getvalue()
    assert b"secret-comment-42" in data and b"SpyPhone" in data
    return data


def test_re_encoding_strips_comment_exif_and_gps() -> None:
    data, _kind = clean_image(_jpeg_with_metadata())
    assert b"secret-comment-42" not in data and b"SpyPhone" not in data and b"Exif" not in data
    with Image.open(io.BytesIO(data)) as again:
        assert not again.getexif() and "comment" not in again.info and "icc_profile" not in again.info


def test_png_text_chunks_are_stripped() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "secret-png-text")
    out = io.BytesIO()
    Image.new("RGB", (20, 20)).save(out, "PNG", pnginfo=info)
    data, _kind = clean_image(out.getvalue())
    assert b"secret-png-text" not in data


def test_busy_decoders_answer_503_instead_of_queueing_forever() -> None:
    slots = DecodeSlots(1, wait_seconds=0.05)
    small = io.BytesIO()
    Image.new("RGB", (10, 10)).save(small, "PNG")
    held = threading.Event()
    with slots.hold():
        held.set()
        with pytest.raises(ServiceUnavailable) as busy:
            clean_image(small.getvalue(), slots=slots)
    assert busy.value.http_status == 503 and "繁忙" in busy.value.public_message
    assert clean_image(small.getvalue(), slots=slots)[1] == "png"  # free again
