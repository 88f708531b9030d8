"""docs/audit-format.md's worked example is right: every hash in it is recomputed from the
definitions with hashlib, the proofs and the checkpoint are checked by the project's code
and by the independent verifier, and the signatures are reproduced from the example keys."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from pathlib import Path

import pytest

from gzsb.workflow.checkpoint import (
    Signer,
    Verifier,
    add_signatures,
    cosignature_message,
    parse_note,
    sign_note,
    verify_checkpoint,
)
from gzsb.workflow.translog import MemoryNodeStore, MerkleTree, verify_consistency, verify_inclusion
from tests.audit import independent_verifier as iv

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit-format.md"
STAMP = 1764547200


def _blocks() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"^```(\S+)\n(.*?)^```$", text, re.M | re.S)}


@pytest.fixture(scope="module")
def values() -> dict[str, bytes]:
    out = {}
    for line in _blocks()["values"].splitlines():
        if line.strip():
            label, _, rest = line.partition(" = ")
            out[label] = bytes.fromhex(rest.split()[0])
    return out


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return dict(line.split(": ", 1) for line in _blocks()["keys"].splitlines())


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def nh(a: bytes, b: bytes) -> bytes:
    return sha(b"\x01" + a + b)


def test_hashes_follow_the_definitions(values: dict[str, bytes]) -> None:
    text = DOC.read_text(encoding="utf-8")
    leaves = []
    for i in range(4):
        data = values[f"data[{i}]"]
        assert f'("{data.decode()}")' in text and data == f"gzsb example leaf {i}".encode()
        leaves.append(sha(b"\x00" + data))
        assert values[f"leaf[{i}]"] == leaves[i]
    n10, n11 = nh(leaves[0], leaves[1]), nh(leaves[2], leaves[3])
    assert values["node(1,0)"] == n10 and values["node(1,1)"] == n11
    roots = {1: leaves[0], 2: n10, 3: nh(n10, leaves[2]), 4: nh(n10, n11)}
    for size, root in roots.items():
        assert values[f"root({size})"] == root
    assert [values[f"inclusion(2,4)[{i}]"] for i in range(2)] == [leaves[3], n10]
    assert [values[f"consistency(3,4)[{i}]"] for i in range(3)] == [leaves[2], leaves[3], n10]
    assert len(values) == 4 + 4 + 2 + 4 + 2 + 3


def test_the_project_and_the_independent_verifier_agree_with_the_example(values: dict[str, bytes]) -> None:
    tree = MerkleTree(MemoryNodeStore())
    tree.append(values[f"leaf[{i}]"] for i in range(4))
    for size in range(1, 5):
        assert tree.root(size) == values[f"root({size})"]
    inclusion = [values[f"inclusion(2,4)[{i}]"] for i in range(2)]
    consistency = [values[f"consistency(3,4)[{i}]"] for i in range(3)]
    assert tree.inclusion_proof(2, 4) == inclusion and tree.consistency_proof(3, 4) == consistency
    verify_inclusion(values["leaf[2]"], 2, 4, inclusion, values["root(4)"])
    verify_consistency(3, 4, values["root(3)"], values["root(4)"], consistency)
    assert iv.root_from_inclusion(values["leaf[2]"], 2, 4, inclusion) == values["root(4)"]


def test_keys_and_signed_checkpoint(values: dict[str, bytes], keys: dict[str, str]) -> None:
    log, witness = Signer.parse(keys["log signer key"]), Signer.parse(keys["witness signer key"])
    assert log.verifier().encode() == keys["log verifier key"]
    assert witness.verifier().encode() == keys["witness verifier key"]
    for who, alg in (("log", b"\x01"), ("witness", b"\x04")):
        name, kid, key64 = keys[f"{who} verifier key"].split("+", 2)
        public = bytes.fromhex(keys[f"{who} public key"])
        assert base64.b64decode(key64) == alg + public
        assert sha(name.encode() + b"\n" + alg + public)[:4].hex() == kid

    note = _blocks()["checkpoint"]
    body = parse_note(note).text
    assert body == f"gzsb.example/log\n4\n{base64.b64encode(values['root(4)']).decode()}\n"
    # Deterministic Ed25519: the example keys reproduce the published lines exactly.
    assert add_signatures(sign_note(body, [log]), [witness], timestamp=STAMP) == note
    verified = verify_checkpoint(
        note, log.verifier(), [Verifier.parse(keys["witness verifier key"])], required_witnesses=1
    )
    assert verified.checkpoint.size == 4 and verified.opened.cosigned_at == {witness.name: STAMP}
    assert iv.check_signature(note, keys["log verifier key"]) is None
    assert iv.check_signature(note, keys["witness verifier key"]) == STAMP
    origin, size, root = iv.verify_leaf(
        values["leaf[2]"],
        2,
        [values[f"inclusion(2,4)[{i}]"] for i in range(2)],
        note,
        keys["log verifier key"],
        keys["witness verifier key"],
    )
    assert (origin, size, root) == ("gzsb.example/log", 4, values["root(4)"])

    assert _blocks()["cosigned-message"].encode() == cosignature_message(body, STAMP)
    witness_line = note.rstrip("\n").rsplit("\n", 1)[1]
    raw = base64.b64decode(witness_line.rsplit(" ", 1)[1])
    text = DOC.read_text(encoding="utf-8")
    assert f"`{raw[4:12].hex()}`" in text and f"`{raw[:4].hex()}`" in text


def test_leaf_data_section_is_there() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert "## Leaf data: what a history event contributes" in text
    assert "TODO" not in text


def test_event_encoding_example() -> None:
    from gzsb.workflow.history import event_hash, event_leaf, genesis_hash

    values = dict(line.split(" = ", 1) for line in _blocks()["event"].splitlines())
    uid, flow = values["uid"], hashlib.sha256(b"flow: example\n").hexdigest()
    assert values["flow"] == flow and values["genesis"] == genesis_hash(uid, flow)
    assert values["genesis"] == hashlib.sha256(f"genesis|{uid}|{flow}".encode()).hexdigest()
    # The body by the documented rule, from the documented fields (hashlib and json only).
    fields = [
        uid,
        1,
        "accept_pledge",
        "started",
        "pledged",
        "account:1",
        "student",
        flow,
        "2026-12-01T02:00:00.000000Z",
    ]
    guards, payload = [["pledged", []]], {"agree": True}
    changes = {"set": {"pledge": {"agreed_at": "2026-12-01T02:00:00+00:00"}}}
    canon = functools.partial(json.dumps, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    body = f"{values['genesis']}|{canon(fields)[:-1]},{canon(guards)},{canon(payload)},{canon(changes)}]"
    assert body == values["body"]
    assert hashlib.sha256(body.encode()).hexdigest() == values["hash"]
    assert values["hash"] == event_hash(
        values["genesis"], *fields[:7], canon(guards), canon(payload), flow, fields[8], canon(changes)
    )
    leaf = event_leaf(uid, 1, values["hash"])
    assert leaf == f'gzsb-log/1 event\n["{uid}",1,"{values["hash"]}"]\n'.encode()
    assert (
        sha(b"\x00" + leaf).hex()
        == values["leaf hash"]
        == iv.leaf_hash(iv.event_leaf_data(uid, 1, values["hash"])).hex()
    )
