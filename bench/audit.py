"""Audit throughput: ``gzsb.audit.service.verify_all`` (chain, replay, data binding and the
transparency log against a signed checkpoint) against a bare ``transitions`` machine
replaying the same event stream, and the memory high-water of a verify run.

``python -m bench.audit --rate N [--reps R] [--jobs J]`` builds (or reuses) the data set of N
applications, integrates and checkpoints its log once, then times R verify passes (with J
processes, default 1) and R bare passes, interleaved. Wall and CPU time are both reported: the
CPU time is this process's; with J > 1 the pool's CPU time is shown beside it.

``python -m bench.audit DATA_SET [--tracemalloc]`` is the memory child (one JSON line)."""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select
from transitions import Machine

from bench.common import Clock, make_app
from gzsb.audit.fleet import BATCH
from gzsb.audit.log import LogConfig, checkpoint
from gzsb.audit.service import FleetCheck, LogPolicy, default_redactor
from gzsb.config import ROOT
from gzsb.extensions import db
from gzsb.models import FlowVersion, HistoryEvent
from gzsb.store import FLOWS
from gzsb.workflow.checkpoint import Signer
from gzsb.workflow.machine import MACHINES
from gzsb.workflow.spec import FlowSpec


@dataclass(frozen=True)
class Pass:
    applications: int
    events: int
    seconds: float
    failures: int
    cpu_seconds: float = 0.0  # this process's CPU time: steadier than wall time on a shared machine
    child_cpu_seconds: float = 0.0  # the pool's processes (ended by the pass), when there is one

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_rate(self) -> float:
        """Events per second of CPU, the pool's processes included."""
        spent = self.cpu_seconds + self.child_cpu_seconds
        return self.events / spent if spent else 0.0


def ensure_log(path: Path) -> tuple[int, float]:
    """Integrate every event into the log and sign a checkpoint (once per data set); (size, seconds)."""
    app = make_app(path, Clock(), fresh=False)
    with app.app_context():
        started = time.perf_counter()
        signer = Signer.parse(app.config["LOG_SIGNING_KEY"])
        row = checkpoint(db.session, LogConfig(signer, signer.name), batch=20_000)
        seconds = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return row.size, seconds


def verify_all(session: Any, jobs: int = 1) -> Iterator[Any]:
    """Every check ``flask audit verify`` makes, the log's included; log problems count as a failure."""
    signer = Signer.parse(current_app.config["LOG_SIGNING_KEY"])
    check = FleetCheck(session, default_redactor(), LogPolicy(signer.verifier(), signer.name), jobs=jobs)
    yield from check.verdicts()
    if check.problems or check.checkpoint is None:
        raise SystemExit(f"log problems: {check.problems or 'no checkpoint'}")


def time_verify(path: Path, jobs: int = 1) -> Pass:
    """One full verify pass over every application of the data set (``jobs`` processes)."""
    ensure_log(path)
    app = make_app(path, Clock(), fresh=False)
    with app.app_context():
        # Loading and compiling the flows is set-up, as for the bare machine (built before its timer).
        for version in db.session.scalars(select(FlowVersion.id)):
            MACHINES.get(FLOWS.by_version(db.session, version))
        applications = events = failures = 0
        started, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
        for verdict in verify_all(db.session, jobs):
            applications += 1
            events += verdict.events
            failures += not verdict.ok
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        children = _children_cpu() - children
        db.session.remove()
        db.engine.dispose()
    return Pass(applications, events, seconds, failures, cpu, children)


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # children that ended and were waited for
    return usage.ru_utime + usage.ru_stime


class _Model:
    """The bare machine's model, reused: its state is reset for every application."""

    state: str


def bare_machine(flow: FlowSpec) -> tuple[Machine, _Model]:
    """A plain ``transitions.Machine`` for ``flow``: no guards, no callbacks, first branch wins."""
    model = _Model()
    machine = Machine(
        model=model,
        states=list(flow.states),
        transitions=[{"trigger": t.event, "source": t.source, "dest": t.dest} for t in flow.transitions],
        initial=flow.initial,
        auto_transitions=False,
    )
    return machine, model


EVENT_QUERY = select(
    HistoryEvent.application_id, HistoryEvent.seq, HistoryEvent.event, HistoryEvent.from_state,
    HistoryEvent.to_state, HistoryEvent.actor, HistoryEvent.role, HistoryEvent.guards, HistoryEvent.payload,
    HistoryEvent.flow_sha256, HistoryEvent.at, HistoryEvent.prev_hash, HistoryEvent.hash, HistoryEvent.changes,
    HistoryEvent.log_index,
).order_by(HistoryEvent.application_id, HistoryEvent.seq)  # fmt: skip
"""The columns and order ``verify_all`` streams (see gzsb/audit.py)."""


def time_bare(path: Path, *, machine_too: bool = True) -> Pass:
    """The same event stream (same query, same batching) through a bare machine; with
    ``machine_too=False`` the rows are only fetched and grouped: the reading floor."""
    app = make_app(path, Clock(), fresh=False)
    with app.app_context():
        version = db.session.scalars(select(FlowVersion.id).order_by(FlowVersion.id)).first()
        flow = FLOWS.by_version(db.session, version)
        machine, model = bare_machine(flow)
        initial = flow.initial
        applications = events = failures = 0
        started, cpu = time.perf_counter(), time.process_time()
        with db.engine.connect() as conn:
            rows = conn.execution_options(yield_per=BATCH).execute(EVENT_QUERY)
            for _app_id, group in itertools.groupby(rows, key=lambda r: r[0]):
                if not machine_too:
                    events += sum(1 for _ in group)
                    applications += 1
                    continue
                machine.set_state(initial, model)
                last = initial
                for row in group:
                    model.trigger(row[2])
                    last = row[4]
                    events += 1
                applications += 1
                # The recorded destination must be where the bare machine went.
                failures += model.state != last
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        db.session.remove()
        db.engine.dispose()
    return Pass(applications, events, seconds, failures, cpu)


# -- memory: one child process per data set, so the numbers are comparable ---------------


@dataclass(frozen=True)
class Memory:
    applications: int
    events: int
    seconds: float
    rss_before_kib: int  # resident set size just before the verify pass
    rss_peak_kib: int  # high-water during the pass (VmHWM after a reset, else ru_maxrss)
    peak_reset: bool  # whether the kernel's high-water mark could be reset before the pass
    tracemalloc_peak_kib: int | None

    @property
    def rss_delta_kib(self) -> int:
        return self.rss_peak_kib - self.rss_before_kib


def measure_memory(path: Path, *, trace: bool) -> Memory:
    """Run ``bench.audit`` as a child on ``path`` and read its JSON answer."""
    command = [sys.executable, "-m", "bench.audit", str(path)] + (["--tracemalloc"] if trace else [])
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return Memory(**json.loads(done.stdout.strip().splitlines()[-1]))


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _child(path: Path, trace: bool) -> dict[str, Any]:
    import resource
    import tracemalloc

    ensure_log(path)
    app = make_app(path, Clock(), fresh=False)
    with app.app_context():
        # Warm up: imports, the flow catalogue and the machine cache are not the run's cost.
        version = db.session.scalars(select(FlowVersion.id).order_by(FlowVersion.id)).first()
        FLOWS.by_version(db.session, version)
        next(verify_all(db.session), None)
        if trace:
            tracemalloc.start()
        reset = _reset_peak()
        before = _status_kib("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        applications = events = failures = 0
        started = time.perf_counter()
        for verdict in verify_all(db.session):
            applications += 1
            events += verdict.events
            failures += not verdict.ok
        seconds = time.perf_counter() - started
        hwm = _status_kib("VmHWM") if reset else None
        peak = hwm or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        traced = tracemalloc.get_traced_memory()[1] // 1024 if trace else None
    if failures:
        raise SystemExit(f"{failures} applications failed verification")
    return asdict(Memory(applications, events, seconds, before, peak, reset and hwm is not None, traced))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.audit",
        description="Audit verify (every check, the log's included) against a bare transitions replay of the "
        "same event stream; or, given a data set file, one memory measurement as JSON.",
    )
    parser.add_argument("path", nargs="?", type=Path, help="a data set file: measure one verify pass's memory")
    parser.add_argument("--rate", type=int, metavar="N", help="build or reuse the data set of N applications, time it")
    parser.add_argument("--reps", type=int, default=1, help="interleaved verify/bare pairs (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="processes verifying at once (default 1: no pool)")
    parser.add_argument("--tracemalloc", action="store_true", help="with a path: also trace Python allocations")
    args = parser.parse_args(argv)
    if (args.rate is None) == (args.path is None):
        parser.error("give either --rate N or a data set path")
    if args.path is not None:
        print(json.dumps(_child(args.path, args.tracemalloc)))
        return
    from bench import dataset

    reps, jobs = args.reps, args.jobs
    data = dataset.ensure(args.rate)
    size, took = ensure_log(data)
    print(f"log: {size:,} leaves integrated and checkpointed in {took:.1f}s (first run only)")
    fulls, bares = [], []
    for _ in range(reps):  # interleaved, so both kinds see the same neighbours
        fulls.append(time_verify(data, jobs))
        bares.append(time_bare(data))
        full, bare = fulls[-1], bares[-1]
        print(
            f"verify: {full.events:,} events in {full.seconds:.2f}s = {full.rate:,.0f}/s "
            f"(CPU {full.cpu_seconds:.2f}s{f' + pool {full.child_cpu_seconds:.2f}s' if jobs > 1 else ''}, "
            f"{full.failures} failed); "
            f"bare: {bare.seconds:.2f}s = {bare.rate:,.0f}/s (CPU {bare.cpu_seconds:.2f}s); "
            f"verify / bare = {full.rate / bare.rate:.0%} wall, {full.cpu_rate / bare.cpu_rate:.0%} CPU"
        )
    if reps > 1:
        wall = statistics.median(f.rate for f in fulls) / statistics.median(b.rate for b in bares)
        cpu = statistics.median(f.cpu_rate for f in fulls) / statistics.median(b.cpu_rate for b in bares)
        print(f"medians of {reps} (verify with {jobs} process(es)): verify / bare = {wall:.0%} wall, {cpu:.0%} CPU")


if __name__ == "__main__":
    main()
