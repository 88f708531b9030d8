"""Benchmark of the transparency log core (in memory, no database) and Markdown table output.

.venv/bin/python -m bench.translog [--leaves N] [--proofs P] [--batch B] [--seed S] [--sql URL]

Every step is also given in units of one raw ``hashlib.sha256`` of a 32-byte string timed in
the same run, because the machine is shared and absolute times drift with its load.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from gzsb.workflow.checkpoint import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    Signer,
    add_signatures,
    sign_checkpoint,
    verify_checkpoint,
)
from gzsb.workflow.translog import MemoryNodeStore, MerkleTree, leaf_hash, verify_consistency, verify_inclusion

ORIGIN = "bench.gzsb.example/log"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Step:
    name: str
    count: int
    seconds: float

    def per_op_us(self) -> float:
        return self.seconds / self.count * 1e6


def timed(name: str, count: int, run: Callable[[], object]) -> Step:
    start = time.perf_counter()
    run()
    step = Step(name, count, time.perf_counter() - start)
    log(f"{name}: {step.seconds:.3f} s")
    return step


def repeat(name: str, count: int, run: Callable[[], object]) -> Step:
    """``count`` timed calls; the median call stands for all (a busy neighbour skews few)."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    step = Step(name, count, statistics.median(times) * count)
    log(f"{name}: median {statistics.median(times) * 1e6:.1f} µs")
    return step


def bench(leaves: int, proofs: int, batch: int, seed: int) -> tuple[list[Step], dict[str, str]]:
    rng = random.Random(seed)
    data = [rng.randbytes(32) for _ in range(leaves)]
    sha256 = hashlib.sha256

    baseline = timed("baseline: raw sha256 of 32 bytes", leaves, lambda: [sha256(d).digest() for d in data])
    hashes: list[bytes] = []
    leaf_step = timed("leaf_hash of a 32-byte leaf", leaves, lambda: hashes.extend(leaf_hash(d) for d in data))

    store = MemoryNodeStore()
    tree = MerkleTree(store)

    def append_all() -> None:
        for at in range(0, leaves, batch):
            tree.append(hashes[at : at + batch])

    append = timed(f"append (batches of {batch:,}), per leaf", leaves, append_all)

    signer = Signer.generate(ORIGIN)
    witness = Signer.generate("bench.gzsb.example/witness", ALG_COSIGNATURE_V1)
    notes: list[str] = []
    checkpoint = repeat(
        "checkpoint: root + sign",
        200,
        lambda: notes.append(sign_checkpoint(Checkpoint(ORIGIN, leaves, tree.root(leaves)), signer)),
    )
    note, root = notes[-1], tree.root(leaves)

    indices = [rng.randrange(leaves) for _ in range(proofs)]
    made: list[list[bytes]] = []
    generate = timed(
        "inclusion proof: generate", proofs, lambda: made.extend(tree.inclusion_proof(i, leaves) for i in indices)
    )

    def verify_all() -> None:
        for index, proof in zip(indices, made, strict=True):
            verify_inclusion(hashes[index], index, leaves, proof, root)

    verify = timed("inclusion proof: verify", proofs, verify_all)
    log_key, witness_key = signer.verifier(), witness.verifier()
    check_note = repeat("checkpoint signature: verify", 200, lambda: verify_checkpoint(note, log_key))

    old = leaves // 2 + 1
    old_root = tree.root(old)
    cons: list[list[bytes]] = []
    cons_gen = repeat(
        "consistency proof (n/2+1 → n): generate", 200, lambda: cons.append(tree.consistency_proof(old, leaves))
    )
    cons_verify = repeat(
        "consistency proof: verify", 200, lambda: verify_consistency(old, leaves, old_root, root, cons[-1])
    )

    def witness_round() -> None:
        verify_checkpoint(note, log_key)
        verify_consistency(old, leaves, old_root, root, cons[-1])
        verify_checkpoint(add_signatures(note, [witness]), log_key, [witness_key], required_witnesses=1)

    cosign = repeat("witness: check + cosign + re-verify (no file I/O)", 200, witness_round)
    steps = [baseline, leaf_step, append, checkpoint, check_note, generate, verify, cons_gen, cons_verify, cosign]
    facts = {
        "leaves, proofs, append batch, seed": f"{leaves:,}, {proofs:,}, {batch:,}, {seed}",
        "proof length (inclusion)": str(len(made[0])),
        "proof length (consistency)": str(len(cons[-1])),
        "node hashes stored": f"{store.node_count():,}",
        "in-memory store": f"{store.node_count() * 32 / 2**20:.1f} MiB",
    }
    return steps, facts


def render(steps: list[Step], facts: dict[str, str], argv: list[str]) -> list[str]:
    unit = steps[0].per_op_us()
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "## Transparency log (in memory)",
        "",
        f"`{' '.join(['python -m bench.translog', *argv])}`",
        "",
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load {load} at the end. "
        f"The unit is one raw `hashlib.sha256` of 32 bytes in this run: {unit:.3f} µs.",
        "",
        "| step | count | total (s) | per op (µs) | × raw sha256 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for step in steps:
        lines.append(
            f"| {step.name} | {step.count:,} | {step.seconds:.3f} | {step.per_op_us():,.2f} | "
            f"{step.per_op_us() / unit:,.1f} |"
        )
    lines += ["", "| fact | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in facts.items()]
    return lines


def sql_bench(url: str, leaves: int, proofs: int, batch: int, seed: int) -> list[str]:
    """The same tree through gzsb.audit.log.SqlNodeStore on a real database (tables created and
    dropped here): append in batches of ``batch`` leaves, one commit each, then sign a
    checkpoint and make and check ``proofs`` inclusion proofs."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from gzsb.audit.log import STATE_ID, SqlNodeStore
    from gzsb.models import LogNode, LogState

    engine = create_engine(url)
    tables = [LogNode.__table__, LogState.__table__]
    for table in tables:
        table.drop(engine, checkfirst=True)
        table.create(engine)
    rng = random.Random(seed)
    try:
        with Session(engine) as session:
            session.add(LogState(id=STATE_ID, size=0))
            session.commit()
            tree = MerkleTree(SqlNodeStore(session))
            started = time.perf_counter()
            for first in range(0, leaves, batch):
                tree.append(leaf_hash(i.to_bytes(8, "big")) for i in range(first, min(first + batch, leaves)))
                session.commit()
            appended = time.perf_counter() - started
            signer = Signer.generate(ORIGIN)
            started = time.perf_counter()
            root = tree.root()
            note = sign_checkpoint(Checkpoint(ORIGIN, leaves, root), signer)
            signed = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(proofs):
                index = rng.randrange(leaves)
                proof = tree.inclusion_proof(index, leaves)
                verify_inclusion(leaf_hash(index.to_bytes(8, "big")), index, leaves, proof, root)
            proved = time.perf_counter() - started
            assert verify_checkpoint(note, signer.verifier()).checkpoint.size == leaves
    finally:
        for table in reversed(tables):
            table.drop(engine, checkfirst=True)
        engine.dispose()
    return [
        f"SQL node store ({engine.dialect.name}), {leaves:,} leaves in batches of {batch:,}:",
        f"- append: {appended:.1f} s ({leaves / appended:,.0f} leaves/s, one transaction per batch)",
        f"- checkpoint (root read + sign): {signed * 1000:.1f} ms",
        f"- inclusion proof made and checked: {proved / proofs * 1000:.2f} ms each ({proofs:,} proofs)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the transparency log core (in memory).")
    parser.add_argument("--leaves", type=int, default=1_000_000, help="leaves appended (default 1,000,000)")
    parser.add_argument("--proofs", type=int, default=1_000, help="inclusion proofs made and checked (default 1,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="leaves per append call (default 1,000)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--sql", metavar="URL", help="run through the SQL node store on this database instead")
    args = parser.parse_args(argv)
    if args.sql:
        print("\n".join(sql_bench(args.sql, args.leaves, args.proofs, args.batch, args.seed)))
        return 0
    if args.leaves < 2 or args.proofs < 1 or args.batch < 1:
        parser.error("need --leaves >= 2, --proofs >= 1, --batch >= 1")
    steps, facts = bench(args.leaves, args.proofs, args.batch, args.seed)
    print("\n".join(render(steps, facts, sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
