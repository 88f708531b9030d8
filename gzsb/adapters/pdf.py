"""HTML → PDF. The default renderer runs wkhtmltopdf (Debian package) through ``pdfkit``.

pdfkit builds the command line but runs it with ``Popen.communicate()`` and no time limit,
so a wedged wkhtmltopdf would hold a worker forever. We let pdfkit build the arguments and
run them ourselves with ``subprocess.run(..., timeout=...)``, which kills the process when
the time is up.

Hardening, whatever the HTML holds: no JavaScript, no local files (``file://`` is refused),
no network (every request goes to a proxy address where nothing listens, so only ``data:``
URIs load), a minimal environment (no inherited proxy settings). The Debian build uses an
unpatched Qt, which ignores --disable-external-links and --print-media-type, so they are not
passed; pdfkit adds --quiet.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import unicodedata
from typing import Any, Protocol

import pdfkit

from gzsb.errors import ServiceError

log = logging.getLogger(__name__)

# A TCP port where nothing listens (the "discard" port, refused at once): with all traffic
# sent through it, http/https loads fail immediately instead of reaching the network.
DEAD_PROXY = "http://127.0.0.1:9"

BASE_OPTIONS: dict[str, Any] = {
    "page-size": "A4",
    "encoding": "UTF-8",
    "margin-top": "12mm",
    "margin-bottom": "12mm",
    "margin-left": "12mm",
    "margin-right": "12mm",
    "disable-javascript": None,
    # wkhtmltopdf waits --javascript-delay (default 200 ms) after loading even with
    # JavaScript off: a sleep in every form. Nothing runs, so nothing is waited for.
    "javascript-delay": "0",
    "disable-local-file-access": None,
    "disable-plugins": None,
    "proxy": DEAD_PROXY,
    # A blocked resource must not abort the whole document; it is simply left out.
    "load-error-handling": "ignore",
    "load-media-error-handling": "ignore",
}


# Noto CJK draws e.g. 工 (U+5DE5) and the Kangxi radical ⼯ (U+2F2F) with one glyph, and Qt's
# PDF writer maps each glyph back to the lowest code point that uses it: the text layer
# (copy, search, pdftotext, screen readers) would say ⼯ where the page shows 工. Kangxi
# radicals map back by NFKC; the CJK Radicals Supplement has no such decomposition, so its
# full-character forms (Unicode's EquivalentUnifiedIdeograph data) are listed here.
RADICAL_SUPPLEMENT = {
    0x2E9F: 0x6BCD, 0x2EA0: 0x6C11, 0x2EA9: 0x738B, 0x2EC4: 0x897F, 0x2EC5: 0x89C1, 0x2EC6: 0x89D2,
    0x2EC9: 0x8D1D, 0x2ECB: 0x8F66, 0x2ED1: 0x9577, 0x2ED3: 0x957F, 0x2ED4: 0x95E8, 0x2ED8: 0x9752,
    0x2ED9: 0x97E6, 0x2EDA: 0x9875, 0x2EDB: 0x98CE, 0x2EDC: 0x98DE, 0x2EDD: 0x98DF, 0x2EE2: 0x9A6C,
    0x2EE3: 0x9AA8, 0x2EE4: 0x9B3C, 0x2EE5: 0x9C7C, 0x2EE6: 0x9E1F, 0x2EE7: 0x5364, 0x2EE8: 0x9EA6,
    0x2EE9: 0x9EC4, 0x2EEA: 0x9EFE, 0x2EEC: 0x9F50, 0x2EEE: 0x9F7F, 0x2EF0: 0x9F99, 0x2EF3: 0x9F9F,
}  # fmt: skip
_CMAP_STREAM = re.compile(rb"stream\r?\n(/CIDInit /ProcSet findresource begin.*?)endstream", re.S)
_CMAP_LINE = re.compile(rb"^(<[0-9A-Fa-f]+> )(<[0-9A-Fa-f]+> )?(.*)$")
_HEX = re.compile(rb"<([0-9A-Fa-f]{4})>")


def _unified(match: re.Match[bytes]) -> bytes:
    code = int(match.group(1), 16)
    if 0x2F00 <= code <= 0x2FDF:
        code = ord(unicodedata.normalize("NFKC", chr(code)))
    else:
        code = RADICAL_SUPPLEMENT.get(code, code)
    return b"<%04X>" % code


def _fix_cmap_line(line: bytes) -> bytes:
    match = _CMAP_LINE.match(line)
    if match is None:
        return line
    first, second, rest = match.groups()
    if second is None:  # bfchar: <glyph> <unicode>
        return first + _HEX.sub(_unified, rest)
    if rest.startswith(b"["):  # bfrange with one code per glyph
        return first + second + _HEX.sub(_unified, rest)
    if first[:-1] == second[:-1]:  # bfrange of a single glyph
        return first + second + _HEX.sub(_unified, rest)
    return line


def unify_radicals(pdf: bytes) -> bytes:
    """Rewrite radical code points in the ToUnicode maps to the ideographs they stand for.

    Every replacement keeps its length (4 hex digits for 4), so stream lengths and the
    cross-reference offsets stay right.
    """

    def fix(match: re.Match[bytes]) -> bytes:
        body = match.group(1)
        fixed = b"\n".join(_fix_cmap_line(line) for line in body.split(b"\n"))
        return match.group(0).replace(body, fixed)

    out = _CMAP_STREAM.sub(fix, pdf)
    assert len(out) == len(pdf)
    return out


class PdfError(ServiceError):
    """The PDF could not be made (renderer missing, failed or too slow)."""

    http_status = 503
    code = "pdf_failed"
    public_message = "报名表生成失败，请稍后再试"


class PdfRenderer(Protocol):
    def render(self, html: str) -> bytes: ...


class WkhtmltopdfRenderer:
    """wkhtmltopdf via pdfkit's command builder, with a hard time limit."""

    def __init__(self, binary: str = "", *, timeout: float = 30.0) -> None:
        found = binary or shutil.which("wkhtmltopdf") or ""
        if not found or not os.path.isfile(found):
            raise PdfError(f"wkhtmltopdf not found (configured: {binary!r}); install the wkhtmltopdf package")
        self.binary = found
        self.timeout = timeout
        self.configuration = pdfkit.configuration(wkhtmltopdf=found, environ=self._environment("/tmp"))

    @staticmethod
    def _environment(runtime_dir: str) -> dict[str, str]:
        # Only what Qt needs: no http_proxy/all_proxy from the server's environment.
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": runtime_dir,
            "XDG_RUNTIME_DIR": runtime_dir,
            "QT_QPA_PLATFORM": "offscreen",
        }

    options: dict[str, Any] = BASE_OPTIONS

    def command(self) -> list[str]:
        # HTML from stdin ('-'), PDF to stdout ('-'). No --title: unpatched Qt ignores it.
        return pdfkit.PDFKit("", "string", options=dict(self.options), configuration=self.configuration).command()

    def render(self, html: str) -> bytes:
        args = self.command()
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="gzsb-pdf-") as runtime_dir:
            os.chmod(runtime_dir, 0o700)
            try:
                result = subprocess.run(  # noqa: S603 - fixed binary, arguments built from our constants
                    args,
                    input=html.encode("utf-8"),
                    capture_output=True,
                    timeout=self.timeout,
                    env=self._environment(runtime_dir),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                log.error("wkhtmltopdf did not finish within %.1f s and was killed", self.timeout)
                raise PdfError(f"wkhtmltopdf timed out after {self.timeout:.1f} s") from None
            except OSError as exc:
                log.error("wkhtmltopdf could not be started: %s", exc)
                raise PdfError(f"wkhtmltopdf could not be started: {exc}") from None
        elapsed = time.perf_counter() - started
        stderr = result.stderr.decode("utf-8", errors="replace").strip()
        pdf = result.stdout
        if not pdf.startswith(b"%PDF-"):
            log.error("wkhtmltopdf failed (exit %d): %s", result.returncode, stderr[-500:] or "no output")
            raise PdfError(f"wkhtmltopdf failed with exit code {result.returncode}: {stderr[-500:]}")
        if result.returncode != 0:
            # Exit 1 with a whole PDF means a resource was refused (file://, network): our
            # template references none, so say so loudly but keep the document.
            log.warning("wkhtmltopdf exit %d, a resource was blocked: %s", result.returncode, stderr[-300:])
        log.info("PDF rendered: %d bytes in %.0f ms", len(pdf), elapsed * 1000)
        return unify_radicals(pdf)


def pdf_renderer(config: Any) -> PdfRenderer:
    """The renderer named by the configuration."""
    name = config.get("PDF_RENDERER", "wkhtmltopdf")
    if name == "wkhtmltopdf":
        return WkhtmltopdfRenderer(config.get("WKHTMLTOPDF", ""), timeout=float(config.get("PDF_TIMEOUT_SECONDS", 30)))
    raise PdfError(f"unknown PDF renderer {name!r}; known: wkhtmltopdf")
