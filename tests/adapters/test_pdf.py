"""The wkhtmltopdf renderer, driven for real: CJK text, hardening, time limit, failures."""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gzsb.adapters.pdf import PdfError, WkhtmltopdfRenderer, pdf_renderer, unify_radicals

FONT = "style=\"font-family: 'Noto Sans CJK SC'\""


def text_of(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def page(body: str) -> str:
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>报名表</title></head>'
        f"<body {FONT}>{body}</body></html>"
    )


@pytest.fixture(scope="module")
def renderer() -> WkhtmltopdfRenderer:
    return WkhtmltopdfRenderer(timeout=30)


def test_cjk_text_is_embedded_and_extractable_as_typed(renderer, tmp_path) -> None:
    # Characters whose Noto glyphs are shared with radicals (工 大 民 长 门 马 青 黄 龙 生).
    words = "天津理工大学 民族 长门马 青黄龙 学生"
    pdf = renderer.render(page(f"<p>{words}</p>"))
    assert pdf.startswith(b"%PDF-")
    assert words in text_of(pdf, tmp_path)
    path = tmp_path / "out.pdf"
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    cjk = [line for line in fonts.splitlines() if "NotoSansCJK" in line]
    assert cjk and all(" yes " in line for line in cjk), fonts  # embedded


def test_radical_code_points_in_text_maps_become_ideographs() -> None:
    cmap = (
        b"stream\n/CIDInit /ProcSet findresource begin\n2 beginbfrange\n"
        b"<0001> <0003> [<2F2F> <2EA0> <6C11>]\n<0004> <0004> <2F24>\nendbfrange\n"
        b"1 beginbfchar\n<0005> <2ED3>\nendbfchar\nendcmap\nendstream"
    )
    fixed = unify_radicals(b"%PDF-1.4\n" + cmap)
    assert b"[<5DE5> <6C11> <6C11>]" in fixed  # 工, 民
    assert b"<0004> <0004> <5927>" in fixed  # 大
    assert b"<0005> <957F>" in fixed  # 长
    assert len(fixed) == len(cmap) + 9


def test_local_files_and_scripts_are_refused(renderer, tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE root:x:0:0")
    body = (
        f'<p id="p">static text</p><iframe src="file://{secret}"></iframe>'
        '<iframe src="file:///etc/passwd"></iframe>'
        f'<object data="file://{secret}"></object>'
        "<script>document.getElementById('p').textContent = 'SCRIPT RAN';</script>"
    )
    text = text_of(renderer.render(page(body)), tmp_path)
    assert "static text" in text
    assert "SCRIPT RAN" not in text
    assert "TOP-SECRET" not in text and "root:x:0:0" not in text


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    _Counter.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_no_network_requests_leave_the_renderer(renderer, tmp_path, local_server) -> None:
    body = (
        f'<link rel="stylesheet" href="{local_server}/style.css">'
        f'<img src="{local_server}/tracker.png"><p>no network</p>'
        f'<iframe src="{local_server}/frame"></iframe>'
    )
    assert "no network" in text_of(renderer.render(page(body)), tmp_path)
    assert _Counter.hits == []
    # The same page through a bare wkhtmltopdf does fetch: the server would have noticed.
    subprocess.run(
        [renderer.binary, "-q", "-", str(tmp_path / "bare.pdf")], input=page(body).encode(), capture_output=True
    )
    assert _Counter.hits


def test_data_uri_images_are_drawn(renderer, tmp_path) -> None:
    from gzsb.regform.service import qr_data_uri

    pdf = renderer.render(page(f'<img src="{qr_data_uri("https://example.invalid/x")}">'))
    path = tmp_path / "img.pdf"
    path.write_bytes(pdf)
    listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True).stdout
    assert len(listing.strip().splitlines()) == 3  # header, rule, one image


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-wkhtmltopdf"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_a_hanging_renderer_is_killed_at_the_time_limit(tmp_path, caplog) -> None:
    slow = WkhtmltopdfRenderer(_script(tmp_path, "sleep 20"), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(PdfError) as failed:
        slow.render(page("<p>x</p>"))
    assert time.monotonic() - started < 5
    assert "timed out after 0.5 s" in str(failed.value)
    assert failed.value.public_message == "报名表生成失败，请稍后再试"
    assert "did not finish within 0.5 s" in caplog.text


def test_a_failing_renderer_raises_with_its_message(tmp_path) -> None:
    broken = WkhtmltopdfRenderer(_script(tmp_path, "echo 'Error: out of cheese' >&2; exit 2"))
    with pytest.raises(PdfError, match="exit code 2: Error: out of cheese"):
        broken.render(page("<p>x</p>"))


def test_missing_binary_and_unknown_renderer_are_configuration_errors(tmp_path) -> None:
    with pytest.raises(PdfError, match="wkhtmltopdf not found"):
        WkhtmltopdfRenderer(str(tmp_path / "nothing-here"))
    with pytest.raises(PdfError, match="unknown PDF renderer 'prince'"):
        pdf_renderer({"PDF_RENDERER": "prince"})
    assert isinstance(pdf_renderer({"PDF_TIMEOUT_SECONDS": 7}), WkhtmltopdfRenderer)


def test_the_command_carries_the_hardening_options(renderer) -> None:
    command = renderer.command()
    for option in ("--disable-javascript", "--disable-local-file-access", "--disable-plugins", "--quiet"):
        assert option in command
    assert command[command.index("--proxy") + 1] == "http://127.0.0.1:9"
    assert command[-2:] == ["-", "-"]
    assert "--enable-local-file-access" not in command
    # No JavaScript, so no wait for it (wkhtmltopdf's default sleeps 200 ms per form).
    assert command[command.index("--javascript-delay") + 1] == "0"
