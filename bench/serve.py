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
    return [*command, "--bind", f"127.0.0.1:{port}", "--log-level", "warning", target]


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
