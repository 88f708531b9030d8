"""Gunicorn servers for the HTTP benchmarks: a free port, a node started in its own process
group (so a node, master and workers, can be killed at once) and waited for, and stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from gzsb.config import ROOT

KEEPALIVE = 5  # seconds, the production setting (gzsb/ops/gunicorn_conf.py)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gunicorn_command(
    target: str, port: int, workers: int, worker_class: str = "gthread", threads: int = 1
) -> list[str]:
    """The production command's flags (README): gthread workers unless told otherwise."""
    command = [str(Path(sys.executable).parent / "gunicorn"), "--workers", str(workers), "--worker-class", worker_class]
    if worker_class == "gthread":
        command += ["--threads", str(threads)]
    # --keep-alive as in gzsb.ops.gunicorn_conf; the drivers' own idle timeout stays below it.
    return [*command, "--keep-alive", str(KEEPALIVE), "--bind", f"127.0.0.1:{port}", "--log-level", "warning", target]


def start_gunicorn(
    command: list[str], port: int, env: dict[str, str], logfile: Path, *, name: str = "gunicorn", wait: float = 90
) -> subprocess.Popen[bytes]:
    """Start ``command`` with ``env`` added, its output appended to ``logfile``; return once
    it answers HTTP on ``port`` (any status), or exit the benchmark saying why not."""
    with logfile.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name}: gunicorn exited with {process.returncode}; see {logfile}")
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            return process
        except requests.RequestException:
            time.sleep(0.2)
    stop_gunicorn(process)
    raise SystemExit(f"{name}: gunicorn did not answer within {wait:.0f} s")


def stop_gunicorn(process: subprocess.Popen[bytes], *, hard: bool = False) -> None:
    """The whole node: SIGTERM (SIGKILL with ``hard``) to its process group, then wait."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGKILL if hard else signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


def _serves(pid: str, database: str) -> bool:
    # A PostgreSQL backend's title: "postgres: USER DATABASE HOST(PORT) STATE".
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return f" {database} " in title


def cpu_seconds(*, session: int | None = None, command: str | None = None, database: str | None = None) -> float:
    """User + system CPU seconds of the live processes of a session (a node started by
    ``start_gunicorn``: master and workers) or with a given command name (``postgres``: the
    server's processes; with ``database``, only the backends connected to it). CPU time,
    unlike wall time, barely moves when other jobs share the machine, so a per-request CPU
    cost is the steadier figure here."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if command is not None:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() != command:
                    continue
            except OSError:
                continue
        if database is not None and not _serves(pid, database):
            continue
        fields = _stat_fields(pid)
        if fields is None or (session is not None and int(fields[3]) != session):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
