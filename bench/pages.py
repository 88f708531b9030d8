"""Student pages in process (Flask's test client) on PostgreSQL against the bare Flask app
(``bench/bare.py``) in the same command: CPU time per request, or with ``--callgrind`` the
user-space instructions per request, which the machine's load does not move.

.venv/bin/python -m bench.pages [--paths /process /application/status] [--requests 2000]
.venv/bin/python -m bench.pages --callgrind [--requests 200]   # needs valgrind; minutes

One logged-in student (``bench.web``'s seed: flow, 确认点, catalogue, started applications). With
``--callgrind`` each measurement runs this module twice under valgrind, with 50 and 50 +
``--requests`` requests after the same warm-up, and reports the difference divided by
``--requests``, so start-up and warm-up cancel out. Neither count includes the kernel's work
(sockets, polls) nor PostgreSQL's: ``bench.web`` reports the database's CPU per request.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.web import CSRF, DEFAULT_URL, PASSWORD, seed

WARMUP = 50
BASE = 50  # requests of the shorter callgrind run


def student_client(url: str, login: str) -> Callable[[str], None]:
    """GET ``path`` as the logged-in student, through the app's own WSGI stack."""
    os.environ.setdefault("GZSB_ENV", "development")
    from gzsb.app import create_app
    from gzsb.config import Config

    config = type("BenchPagesConfig", (Config,), {"SQLALCHEMY_DATABASE_URI": url, "SESSION_COOKIE_SECURE": False})
    client = create_app(config).test_client()
    token = CSRF.search(client.get("/login").get_data(as_text=True))
    assert token is not None, "the log-in page has no CSRF token"
    answer = client.post("/login", data={"login": login, "password": PASSWORD, "csrf_token": token.group(1)})
    if answer.status_code != 302:
        raise SystemExit(f"log-in failed: HTTP {answer.status_code}")

    def get(path: str) -> None:
        if client.get(path).status_code != 200:
            raise SystemExit(f"{path} did not answer 200")

    return get


def bare_client() -> Callable[[str], None]:
    from bench.bare import app

    client = app.test_client()

    def get(_path: str) -> None:
        if client.get("/").status_code != 200:
            raise SystemExit("the bare app did not answer 200")

    return get


def run(get: Callable[[str], None], path: str, requests: int) -> float:
    """CPU seconds per request (user + system) after the warm-up."""
    for _ in range(WARMUP):
        get(path)
    started = time.process_time()
    for _ in range(requests):
        get(path)
    return (time.process_time() - started) / requests


def instructions(args: argparse.Namespace, path: str, requests: int) -> int:
    """Instructions valgrind counted for one run of this module on ``path``."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m", "bench.pages"]
        command += ["--once", path, "--requests", str(requests), "--database-url", args.database_url]
        subprocess.run(command, check=True, capture_output=True)
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit("callgrind wrote no totals")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--paths", nargs="+", default=["/process", "/application/status", "/application"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--callgrind", action="store_true", help="count instructions under valgrind")
    parser.add_argument("--once", help=argparse.SUPPRESS)  # one measured run (what --callgrind runs)
    args = parser.parse_args(argv)
    if args.once:
        login = os.environ.get("BENCH_PAGES_LOGIN", "")
        get = bare_client() if args.once == "bare" else student_client(args.database_url, login)
        run(get, args.once, args.requests)
        return 0
    os.environ["BENCH_PAGES_LOGIN"] = seed(args.database_url, 3)[0]
    rows: list[tuple[str, float]] = []
    for path in ["bare", *args.paths]:
        if args.callgrind:
            rows.append(
                (
                    path,
                    (instructions(args, path, BASE + args.requests) - instructions(args, path, BASE)) / args.requests,
                )
            )
        else:
            get = (
                bare_client() if path == "bare" else student_client(args.database_url, os.environ["BENCH_PAGES_LOGIN"])
            )
            rows.append((path, run(get, path, args.requests) * 1000))
    unit = "instructions per request" if args.callgrind else "CPU ms per request"
    command = "python -m bench.pages " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"`{command.strip()}`, load average {'/'.join(f'{x:.2f}' for x in os.getloadavg())}:\n")
    print(f"| request | {unit} | share of bare |\n|---|---:|---:|")
    bare = rows[0][1]
    for path, value in rows:
        shown = f"{value:,.0f}" if args.callgrind else f"{value:.3f}"
        print(
            f"| {'bare Flask app `/`' if path == 'bare' else f'`GET {path}`'} | {shown} | {100 * bare / value:.1f} % |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
