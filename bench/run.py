"""Run the benchmarks and print Markdown tables (also written to bench/out/results.md).

.venv/bin/python -m bench.run [--apps N] [--only audit|fire] [--reps R]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import dataset
from bench.audit import Memory, Pass, measure_memory, time_bare, time_verify
from bench.common import OUT, PATH, ensure_database, median, percentile
from bench.fire import FireRun, run_once
from gzsb.config import ROOT


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine_info() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu or platform.processor() or "?",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": version("sqlalchemy"),
        "transitions": version("transitions"),
        "load": _load(),
    }


def _load() -> str:
    """Other processes share the CPUs: the load average says how busy they were."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# -- audit -------------------------------------------------------------------------------


def audit(apps: int, reps: int, trace: bool) -> dict[str, Any]:
    path = dataset.ensure(apps, log)
    small_apps = max(apps // 10, 1)
    small = dataset.ensure(small_apps, log)
    passes: dict[str, list[Pass]] = {"verify": [], "bare": [], "stream": []}
    for rep in range(1, reps + 1):
        # Interleaved, so drift (page cache, CPU clock) hits all three alike.
        for name, run in (
            ("verify", lambda: time_verify(path)),
            ("bare", lambda: time_bare(path)),
            ("stream", lambda: time_bare(path, machine_too=False)),
        ):
            result = run()
            if result.failures or result.events != apps * len(PATH) or result.applications != apps:
                raise SystemExit(f"{name} pass {rep} is wrong: {result}")
            passes[name].append(result)
            log(f"audit rep {rep}/{reps} {name:6}: {result.events:,} events in {result.seconds:.2f}s")
    memory: dict[str, list[Memory]] = {"rss": [], "tracemalloc": []}
    for label, traced in (("rss", False), ("tracemalloc", True)):
        if traced and not trace:
            continue
        for size_path in (small, path):
            measured = measure_memory(size_path, trace=traced)
            memory[label].append(measured)
            log(f"memory ({label}) {measured.applications:,} applications: {asdict(measured)}")
    return {"apps": apps, "passes": passes, "memory": memory}


def _rates(passes: Sequence[Pass]) -> float:
    return median([p.rate for p in passes])


def render_audit(result: dict[str, Any]) -> list[str]:
    passes: dict[str, list[Pass]] = result["passes"]
    verify, bare, stream = _rates(passes["verify"]), _rates(passes["bare"]), _rates(passes["stream"])
    reps = len(passes["verify"])
    events = passes["verify"][0].events
    per_rep_ratio = median([v.rate / b.rate for v, b in zip(passes["verify"], passes["bare"], strict=True)])
    lines = [
        f"### Audit: {result['apps']:,} applications × {len(PATH)} events = {events:,} events",
        "",
        f"Median of {reps} passes each (interleaved); all applications verified ok in every pass.",
        "",
        "| pass | median s | median events/s | passes (s) |",
        "|---|---:|---:|---|",
    ]
    for name, label in (
        ("verify", "`gzsb.audit.service.verify_all` (every check)"),
        ("bare", "bare `transitions.Machine` trigger per event"),
        ("stream", "fetch + group the same rows only (floor)"),
    ):
        runs = passes[name]
        lines.append(
            f"| {label} | {median([p.seconds for p in runs]):.2f} | {_rates(runs):,.0f} | "
            f"{', '.join(f'{p.seconds:.2f}' for p in runs)} |"
        )
    lines += [
        "",
        "| ratio | value | target |",
        "|---|---:|---:|",
        f"| verify events/s | {verify:,.0f} | ≥ 30,000 |",
        f"| verify / bare machine (medians) | {verify / bare:.0%} | ≥ 25% |",
        f"| verify / bare machine (median of per-pass ratios) | {per_rep_ratio:.0%} | |",
        f"| verify / fetch-only floor | {verify / stream:.0%} | |",
        "",
    ]
    memory: dict[str, list[Memory]] = result["memory"]
    lines += [
        "### Audit memory (one child process per data set)",
        "",
        "| applications | events | RSS before (MiB) | RSS peak during verify (MiB) | Δ (MiB) | "
        + "tracemalloc peak (MiB) | verify s (untraced) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    traced = {m.applications: m for m in memory["tracemalloc"]}
    for m in memory["rss"]:
        t = traced.get(m.applications)
        lines.append(
            f"| {m.applications:,} | {m.events:,} | {m.rss_before_kib / 1024:.1f} | {m.rss_peak_kib / 1024:.1f} | "
            f"{m.rss_delta_kib / 1024:.1f} | {f'{t.tracemalloc_peak_kib / 1024:.1f}' if t else '—'} | "
            f"{m.seconds:.2f} |"
        )
    reset = all(m.peak_reset for m in memory["rss"])
    lines += [
        "",
        "RSS peak is VmHWM after resetting it (`/proc/self/clear_refs` = 5) just before the pass"
        if reset
        else "RSS peak is ru_maxrss (the high-water mark could not be reset)",
        "",
    ]
    return lines


# -- fire --------------------------------------------------------------------------------


def fire(applicants: int, events: int, reps: int, url: str = "") -> list[FireRun]:
    runs = []
    for rep in range(1, reps + 1):
        started = time.perf_counter()
        run = run_once(applicants, events, url)
        runs.append(run)
        log(
            f"fire rep {rep}/{reps}: {len(run.all_fires):,} fires, p50 {percentile(run.all_fires, 50) * 1e3:.2f} ms "
            f"({time.perf_counter() - started:.1f}s, journal {run.journal_mode})"
        )
    return runs


def _throughput(runs: Sequence[FireRun]) -> float:
    """Median over the runs of calls / total time in fire() (the tail counts, unlike 1/p50)."""
    return median([len(r.all_fires) / sum(r.all_fires) for r in runs])


def _ms(runs: Sequence[FireRun], pick: Any, q: float) -> float:
    """Median over the runs of the q-th percentile, in milliseconds."""
    return median([percentile(pick(r), q) for r in runs]) * 1e3


def render_fire(runs: Sequence[FireRun], applicants: int, events: int) -> list[str]:
    kinds = list(dict.fromkeys(e for e, _, _ in PATH[:events]))
    where = (
        "PostgreSQL"
        if runs[0].journal_mode == "postgresql"
        else f"SQLite file (journal_mode={runs[0].journal_mode}, synchronous=NORMAL)"
    )
    lines = [
        f"### fire() latency: {applicants} applicants × first {events} events, {where}, commit included",
        "",
        f"Milliseconds; each percentile is the median over {len(runs)} runs (fresh database each run).",
        "",
        "| call | n per run | p50 | p95 | p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in kinds:

        def pick(r: FireRun, k: str = kind) -> list[float]:
            return r.fires[k]

        n = len(runs[0].fires[kind])
        lines.append(
            f"| `{kind}` | {n} | {_ms(runs, pick, 50):.3f} | {_ms(runs, pick, 95):.3f} | {_ms(runs, pick, 99):.3f} |"
        )

    def every(r: FireRun) -> list[float]:
        return r.all_fires

    def raw(r: FireRun) -> list[float]:
        return r.raw_insert

    def session(r: FireRun) -> list[float]:
        return r.session_insert

    n_all = len(runs[0].all_fires)
    rows = (
        ("**all fire() calls**", every, n_all),
        ("bare INSERT + COMMIT, one row (DB-API connection)", raw, len(runs[0].raw_insert)),
        ("same INSERT + COMMIT through the SQLAlchemy session", session, len(runs[0].session_insert)),
    )
    for label, pick_fn, n in rows:
        lines.append(
            f"| {label} | {n} | {_ms(runs, pick_fn, 50):.3f} | {_ms(runs, pick_fn, 95):.3f} | "
            f"{_ms(runs, pick_fn, 99):.3f} |"
        )
    lines += [
        "",
        "| ratio (p50) | value |",
        "|---|---:|",
        f"| fire() / bare INSERT+COMMIT | {_ms(runs, every, 50) / _ms(runs, raw, 50):,.1f}× |",
        f"| fire() rate as a share of the bare INSERT+COMMIT rate | {_ms(runs, raw, 50) / _ms(runs, every, 50):.1%} |",
        f"| fire() / session INSERT+COMMIT | {_ms(runs, every, 50) / _ms(runs, session, 50):,.1f}× |",
        f"| fire() calls per second, one thread (1 / p50) | {1000 / _ms(runs, every, 50):,.0f} |",
        f"| bare INSERT+COMMIT per second (1 / p50) | {1000 / _ms(runs, raw, 50):,.0f} |",
        f"| fire() calls per second, one thread (calls / summed time) | {_throughput(runs):,.0f} |",
        "",
    ]
    return lines


# -- main --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=100_000, help="applications in the audit data set")
    parser.add_argument("--only", choices=("audit", "fire"), help="run one bench only")
    parser.add_argument("--reps", type=int, default=3, help="audit passes of each kind (median reported)")
    parser.add_argument("--fire-reps", type=int, default=5, help="fire() runs (median of percentiles reported)")
    parser.add_argument("--fire-applicants", type=int, default=300)
    parser.add_argument("--fire-events", type=int, default=9, choices=range(1, len(PATH) + 1), metavar="1..15")
    parser.add_argument(
        "--fire-db", default="", metavar="URL", help="fire() on this PostgreSQL database (emptied) instead of SQLite"
    )
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the (slow) tracemalloc children")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    info = machine_info()
    python = Path(sys.executable)
    if python.is_relative_to(ROOT):
        python = python.relative_to(ROOT)
    command = f"{python} -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "## Results",
        "",
        f"- command: `{command.strip()}`",
        "- machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "load"),
        "",
    ]
    raw: dict[str, Any] = {"machine": info, "command": command.strip()}
    if args.only in (None, "audit"):
        result = audit(args.apps, args.reps, not args.no_tracemalloc)
        lines += render_audit(result)
        raw["audit"] = {
            "apps": result["apps"],
            "passes": {k: [asdict(p) for p in v] for k, v in result["passes"].items()},
            "memory": {k: [asdict(m) for m in v] for k, v in result["memory"].items()},
        }
    if args.only in (None, "fire"):
        if args.fire_db:
            ensure_database(args.fire_db)
        runs = fire(args.fire_applicants, args.fire_events, args.fire_reps, args.fire_db)
        lines += render_fire(runs, args.fire_applicants, args.fire_events)
        raw["fire"] = [
            {"fires": dict(r.fires), "raw_insert": r.raw_insert, "session_insert": r.session_insert} for r in runs
        ]
    lines.append(
        f"Total wall time: {time.perf_counter() - started:.0f}s. "
        + f"Load average (1/5/15 min) at start {info['load']}, at the end {_load()}."
    )
    text = "\n".join(lines) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.md").write_text(text, encoding="utf-8")
    (OUT / "results.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    print(text)
    log(f"written {OUT / 'results.md'} and results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
