"""The witness: cosigns a log checkpoint only if the log has only grown since the last one.

Run by the exam authority on its own machine, without the application database::

    python -m gzsb.workflow.witness init --dir D --name kaoshiyuan.example/witness
    python -m gzsb.workflow.witness cosign --dir D --log-key VKEY --checkpoint FILE --proof FILE [--out FILE]

``D`` holds the witness's Ed25519 key (``witness.key``, mode 0600), its verifier key
(``witness.pub``) and ``state.json``: per log origin, the pinned log key and the size and root
of the last checkpoint it cosigned. The proof file is the head of a C2SP tlog-witness
add-checkpoint request: a line ``old <size>`` naming the size the proof starts from, then one
base64 hash a line. The first checkpoint of a log is trusted on first use (recorded so).

The state is written (atomically) before the cosignature is released, so a crash can never
leave a cosignature the witness does not remember. Exit status: 0 cosigned, 1 refused or
bad input, 2 usage error.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gzsb.workflow.checkpoint import ALG_COSIGNATURE_V1, NoteError, Signer, Verifier, add_signatures, verify_checkpoint
from gzsb.workflow.translog import ProofError, verify_consistency

KEY_FILE = "witness.key"
PUB_FILE = "witness.pub"
STATE_FILE = "state.json"
LOCK_FILE = "witness.lock"
MAX_PROOF_LINES = 63  # tlog-witness's bound: enough for any tree below 2**63 leaves
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]*)")


class WitnessError(Exception):
    """The witness refuses (an inconsistent or shrunk log, a bad signature) or cannot run."""


@dataclass(frozen=True)
class LogState:
    """What the witness remembers of one log: the key pinned and the last cosigned tree head."""

    log_key: str
    size: int
    root: str  # base64, as in the checkpoint
    cosigned_at: int
    trusted_on_first_use_at: int


@dataclass(frozen=True)
class Cosigned:
    note: str  # the checkpoint note with the witness's cosignature line added
    origin: str
    size: int
    first_use: bool  # no earlier checkpoint of this log: trusted on first use


def format_proof(old_size: int, proof: Sequence[bytes]) -> str:
    """The proof file the log hands to the witness (the app's CLI writes it)."""
    return f"old {old_size}\n" + "".join(base64.b64encode(h).decode("ascii") + "\n" for h in proof)


def parse_proof(text: str) -> tuple[int, list[bytes]]:
    lines = text.split("\n")
    if lines[-1] != "":
        raise WitnessError("the proof file must end with a newline")
    lines = lines[:-1]
    while lines and lines[-1] == "":
        lines.pop()  # a trailing blank line (as in an add-checkpoint body) is harmless
    match = _OLD_LINE.fullmatch(lines[0]) if lines else None
    if match is None:
        raise WitnessError("the proof file must start with a line 'old <size>' (decimal, no leading zeros)")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessError(f"the proof has {len(lines) - 1} hashes, more than {MAX_PROOF_LINES}")
    proof = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            value = base64.b64decode(line.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise WitnessError(f"proof line {number} is not base64: {line!r}") from None
        if len(value) != 32:
            raise WitnessError(f"proof line {number} holds {len(value)} bytes, not a 32-byte hash")
        proof.append(value)
    return int(match.group(1)), proof


def init_witness(directory: Path, name: str) -> str:
    """Make the witness's key in ``directory``; returns its verifier key (to publish). Never overwrites."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = directory / KEY_FILE
    if key_path.exists():
        raise WitnessError(f"{key_path} already exists: this directory already holds a witness key")
    try:
        signer = Signer.generate(name, ALG_COSIGNATURE_V1)
    except NoteError as exc:
        raise WitnessError(str(exc)) from None
    # O_EXCL with mode 0600: the key is never readable by others, not even briefly.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(signer.encode() + "\n")
        out.flush()
        os.fsync(out.fileno())
    vkey = signer.verifier().encode()
    _write_atomic(directory / PUB_FILE, vkey + "\n", 0o644)
    return vkey


def load_signer(directory: Path) -> Signer:
    key_path = directory / KEY_FILE
    try:
        text = key_path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise WitnessError(f"no witness key at {key_path}: run 'init' first") from None
    if key_path.stat().st_mode & 0o077:
        raise WitnessError(f"{key_path} is readable by others; restrict it with chmod 600")
    try:
        signer = Signer.parse(text)
    except NoteError as exc:
        raise WitnessError(f"{key_path}: {exc}") from None
    if signer.alg != ALG_COSIGNATURE_V1:
        raise WitnessError(f"{key_path} is not a cosignature/v1 (type 0x04) key")
    return signer


def load_state(directory: Path) -> dict[str, LogState]:
    path = directory / STATE_FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {origin: LogState(**entry) for origin, entry in raw["logs"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise WitnessError(f"{path} is damaged ({exc}); refusing to cosign without a trustworthy state") from None


def cosign(
    directory: Path,
    log_key: str,
    checkpoint_note: str | bytes,
    proof_text: str | None,
    *,
    now: int | None = None,
) -> Cosigned:
    """Check the checkpoint and cosign it; the result carries the note with the witness's line added.

    Raises WitnessError, leaving the stored state untouched, if the log signature is wrong,
    the log shrank, the same size has another root, or the consistency proof fails.
    """
    try:
        log = Verifier.parse(log_key)
        checkpoint = verify_checkpoint(checkpoint_note, log).checkpoint
    except NoteError as exc:
        raise WitnessError(f"checkpoint refused: {exc}") from None
    signer = load_signer(directory)
    stamp = int(time.time()) if now is None else now
    new_root = base64.b64encode(checkpoint.root).decode("ascii")
    with _locked(directory):
        logs = load_state(directory)
        known = logs.get(checkpoint.origin)
        if known is None:
            first_use = stamp
        else:
            _check_grown(known, log, checkpoint.size, checkpoint.root, proof_text)
            first_use = known.trusted_on_first_use_at
        logs[checkpoint.origin] = LogState(log.encode(), checkpoint.size, new_root, stamp, first_use)
        _save_state(directory, logs)
    try:
        note = add_signatures(checkpoint_note, [signer], timestamp=stamp)
    except NoteError as exc:  # cannot happen for a note that just verified; named anyway
        raise WitnessError(f"cannot cosign: {exc}") from None
    return Cosigned(note, checkpoint.origin, checkpoint.size, known is None)


def _check_grown(known: LogState, log: Verifier, size: int, root: bytes, proof_text: str | None) -> None:
    if known.log_key != log.encode():
        raise WitnessError(
            f"log key {log.encode()} is not the key pinned for this log ({known.log_key}); "
            "a key change needs the operator to edit the witness state"
        )
    old_root = base64.b64decode(known.root)
    seen = f"size {known.size}, root {known.root}"
    new = f"size {size}, root {base64.b64encode(root).decode('ascii')}"
    if size < known.size:
        raise WitnessError(f"refused: the log shrank from {seen} to {new}")
    if size == known.size:
        if root != old_root:
            raise WitnessError(f"refused: the log was rewritten: {new} differs from the cosigned {seen}")
        return
    if proof_text is None:
        raise WitnessError(f"refused: a consistency proof from size {known.size} to {size} is required")
    old_size, proof = parse_proof(proof_text)
    if old_size != known.size:
        raise WitnessError(f"refused: the proof starts at size {old_size}, but the witness last cosigned {seen}")
    try:
        verify_consistency(known.size, size, old_root, root, proof)
    except ProofError as exc:
        raise WitnessError(f"refused: the log is not an extension of the cosigned {seen} ({new}): {exc}") from None


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One cosign at a time per witness directory (two racing runs could each pass the check)."""
    with open(directory / LOCK_FILE, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _save_state(directory: Path, logs: dict[str, LogState]) -> None:
    data = {"format": "gzsb-witness/1", "logs": {origin: asdict(state) for origin, state in sorted(logs.items())}}
    _write_atomic(directory / STATE_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n", 0o600)


def _write_atomic(path: Path, text: str, mode: int) -> None:
    """Write a temp file beside ``path``, fsync, rename over it, fsync the directory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gzsb.workflow.witness",
        description="Cosign a log checkpoint only if the log has only grown since the last one.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="make the witness key")
    init.add_argument("--dir", type=Path, required=True, help="the witness's own directory")
    init.add_argument("--name", required=True, help="the witness key name, e.g. kaoshiyuan.example/witness")
    run = commands.add_parser("cosign", help="check a checkpoint and cosign it")
    run.add_argument("--dir", type=Path, required=True)
    run.add_argument("--log-key", required=True, help="the log's verifier key <name>+<hash>+<key>")
    run.add_argument("--checkpoint", type=Path, required=True, help="the signed checkpoint note")
    run.add_argument(
        "--proof", type=Path, help="consistency proof from the last cosigned size (not needed the first time)"
    )
    run.add_argument("--out", type=Path, help="also write the cosigned note here")
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            print(init_witness(args.dir, args.name))
            print(f"witness key written to {args.dir / KEY_FILE}; publish the verifier key above", file=sys.stderr)
            return 0
        proof = args.proof.read_text(encoding="utf-8") if args.proof else None
        done = cosign(args.dir, args.log_key, args.checkpoint.read_bytes(), proof)
        if args.out:
            _write_atomic(args.out, done.note, 0o644)
    except (WitnessError, OSError) as exc:
        print(f"witness: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(done.note)
    how = "trusted on first use" if done.first_use else "consistent with the last cosigned checkpoint"
    print(f"witness: cosigned {done.origin} at size {done.size} ({how})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
