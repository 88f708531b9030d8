"""报名表 PDF rendering: latency per form and forms per minute for one worker.

.venv/bin/python -m bench.pdf [--forms N] [--warmup W]

A fresh SQLite file (bench/out/pdf.sqlite3), N 普通 applicants driven to ``approved``
through the real engine, each with a stored 证件照 (set-up, not measured). Then one worker
renders their forms one after another with ``gzsb.regform.service.render_form`` (what the Huey task
runs): content and digest, photo scaling, QR code, template, wkhtmltopdf (a real process
per form), storing the PDF and the commit. Reported: p50/p95/max of the whole call and of
the wkhtmltopdf part alone, the floor (the same renderer on a one-line ASCII page: what
starting wkhtmltopdf costs at all), forms per minute for one worker (N / total wall time), PDF
size, and the cost of a page view once the PDF is cached (``form_status``: content digest
compared with the stored one, no render).

Before/after in the same run: each form's HTML is also rendered, right after its measured
render, by a renderer with wkhtmltopdf's default ``--javascript-delay 200`` (what every form
paid before ``gzsb.adapters.pdf`` passed 0). "Before" forms per minute: the measured
``render_form`` time with its wkhtmltopdf part replaced by that renderer's time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version

from bench.common import OUT, SYSTEM, Clock, add_applicants, make_app, median, percentile, remove_db
from gzsb.adapters.pdf import BASE_OPTIONS, WkhtmltopdfRenderer
from gzsb.bootstrap import engine, storage
from gzsb.cli.demo import basic_info, demo_student, portrait_png
from gzsb.common.uploads import accept_image, store_image
from gzsb.extensions import db
from gzsb.models import Application
from gzsb.payments.service import current_order
from gzsb.regform import service as forms
from gzsb.store import FLOWS

PDF_DB = OUT / "pdf.sqlite3"
MATCHED = {"matched": True, "distance": 0.38, "threshold": 0.6, "model": "Dlib"}


@dataclass
class TimedRenderer:
    """The real renderer, with the time of each wkhtmltopdf run noted."""

    inner: WkhtmltopdfRenderer
    seconds: list[float] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)

    def render(self, html: str) -> bytes:
        self.pages.append(html)
        started = time.perf_counter()
        try:
            return self.inner.render(html)
        finally:
            self.seconds.append(time.perf_counter() - started)


class DefaultDelayRenderer(WkhtmltopdfRenderer):
    """The renderer as it was: wkhtmltopdf's default 200 ms JavaScript delay."""

    options = {**BASE_OPTIONS, "javascript-delay": "200"}


def approve_all(count: int) -> list[int]:
    """``count`` applications in ``approved``, each with a stored photo (in an app context)."""
    eng = engine()
    ids = []
    for who in add_applicants(count):
        student = demo_student(who.index)
        app_id = who.application_id

        def fire(event: str, payload: dict, by_student: bool = True, app_id: int = app_id, who=who) -> None:
            eng.fire(app_id, event, who.actor if by_student else SYSTEM, payload)

        fire("accept_pledge", {"agree": True})
        fire("submit_basic_info", {**basic_info(student, "NK01"), "category": "普通"})  # no materials review
        fire("check_xueji", {})
        fire("confirm_xueji", {"answer": "correct"})
        fire("submit_preferences", {"choices": [{"institution": "10060", "major": "080901"}]})
        fire("confirm_info", {})
        record = db.session.get(Application, app_id)
        if "give_face_consent" in FLOWS.by_version(db.session, record.flow_version_id).events_from(record.state):
            fire("give_face_consent", {"agree": True})
        record = db.session.get(Application, app_id)
        uids = {}
        for kind in ("photo", "id_card"):  # the identity step takes only the application's own uploads
            image = accept_image(portrait_png(who.index), max_bytes=5_000_000, max_pixels=40_000_000)
            uids[kind] = store_image(
                db.session, storage(), application_id=app_id, application_uid=record.uid, kind=kind, image=image
            ).uid
        db.session.commit()
        fire("upload_identity", uids)
        fire("face_matched", MATCHED, by_student=False)
        fire("create_order", {})
        order = current_order(db.session, app_id)
        payment = {"order": order["number"], "amount_fen": order["amount_fen"], "trade_no": "T1", "channel": "alipay"}
        fire("payment_succeeded", payment, by_student=False)
        assert db.session.get(Application, app_id).state == forms.FINAL_STATE
        ids.append(app_id)
    return ids


def run(count: int, warmup: int) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    remove_db(PDF_DB)
    clock = Clock()
    app = make_app(PDF_DB, clock)
    with app.app_context():
        print(f"[bench.pdf] driving {count + warmup} applicants to approved …", file=sys.stderr, flush=True)
        ids = approve_all(count + warmup)
        renderer = TimedRenderer(WkhtmltopdfRenderer(timeout=60))
        for app_id in ids[:warmup]:  # page cache, fonts, Python imports
            forms.render_form(db.session, app_id, renderer, storage(), clock())
        renderer.seconds.clear()
        print(f"[bench.pdf] rendering {count} forms …", file=sys.stderr, flush=True)
        calls, sizes, before = [], [], []
        old = DefaultDelayRenderer(timeout=60)
        renderer.pages.clear()
        for app_id in ids[warmup:]:
            t0 = time.perf_counter()
            form = forms.render_form(db.session, app_id, renderer, storage(), clock())
            calls.append(time.perf_counter() - t0)
            assert form is not None and form.pdf is not None and form.pdf.startswith(b"%PDF-")
            sizes.append(len(form.pdf))
            t0 = time.perf_counter()
            old.render(renderer.pages[-1])
            before.append(time.perf_counter() - t0)
        total = sum(calls)
        total_before = total - sum(renderer.seconds) + sum(before)
        # The floor: the same renderer on a one-line ASCII page (process start, Qt, no CJK).
        floor = []
        for _ in range(min(count, 20)):
            t0 = time.perf_counter()
            renderer.inner.render("<!doctype html><p>x</p>")
            floor.append(time.perf_counter() - t0)
        views = []
        for app_id in ids[warmup:]:
            record = db.session.get(Application, app_id)
            t0 = time.perf_counter()
            status = forms.form_status(db.session, record, clock(), lambda _id: None)
            views.append(time.perf_counter() - t0)
            assert status is not None and status.ready
    ms = 1000.0
    return {
        "forms": count,
        "render_call_ms": {
            "p50": percentile(calls, 50) * ms,
            "p95": percentile(calls, 95) * ms,
            "max": max(calls) * ms,
        },
        "wkhtmltopdf_ms": {
            "p50": percentile(renderer.seconds, 50) * ms,
            "p95": percentile(renderer.seconds, 95) * ms,
            "max": max(renderer.seconds) * ms,
        },
        "floor_ms": {"p50": percentile(floor, 50) * ms, "p95": percentile(floor, 95) * ms, "max": max(floor) * ms},
        "forms_per_minute_per_worker": count / total * 60,
        "forms_per_minute_default_delay": count / total_before * 60,
        "default_delay_wkhtmltopdf_ms_p50": percentile(before, 50) * ms,
        "total_s": total,
        "pdf_kib_median": median(sizes) / 1024,
        "cached_view_ms": {"p50": percentile(views, 50) * ms, "p95": percentile(views, 95) * ms},
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "wkhtmltopdf": WkhtmltopdfRenderer().binary,
            "pdfkit": version("pdfkit"),
            "load": "/".join(f"{x:.2f}" for x in os.getloadavg()),
        },
    }


def markdown(result: dict) -> str:
    r, w, v = result["render_call_ms"], result["wkhtmltopdf_ms"], result["cached_view_ms"]
    f, len_floor = result["floor_ms"], min(result["forms"], 20)
    return "\n".join(
        [
            f"{result['forms']} forms rendered one after another by one worker "
            f"(load average at the end {result['machine']['load']}).",
            "",
            "| measure | p50 | p95 | max |",
            "|---|---:|---:|---:|",
            f"| `render_form` (content, photo, QR, template, wkhtmltopdf, store) | {r['p50']:.0f} ms "
            f"| {r['p95']:.0f} ms | {r['max']:.0f} ms |",
            f"| of which wkhtmltopdf (process start to PDF) | {w['p50']:.0f} ms | {w['p95']:.0f} ms "
            f"| {w['max']:.0f} ms |",
            f"| floor: the same renderer, one-line ASCII page ({len_floor} runs) | {f['p50']:.0f} ms "
            f"| {f['p95']:.0f} ms | {f['max']:.0f} ms |",
            f"| page view with the PDF cached (`form_status`: digest check) | {v['p50']:.2f} ms "
            f"| {v['p95']:.2f} ms | |",
            "",
            f"Forms per minute per worker: **{result['forms_per_minute_per_worker']:.0f}** "
            f"({result['forms']} in {result['total_s']:.1f} s); median PDF {result['pdf_kib_median']:.0f} KiB.",
            f"Same forms, same run, with wkhtmltopdf's default `--javascript-delay 200` (before): "
            f"**{result['forms_per_minute_default_delay']:.0f}** forms per minute "
            f"(its wkhtmltopdf p50 {result['default_delay_wkhtmltopdf_ms_p50']:.0f} ms).",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    result = run(args.forms, args.warmup)
    (OUT / "pdf-results.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
