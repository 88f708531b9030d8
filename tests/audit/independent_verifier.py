"""An auditor's verifier written from docs/audit-format.md alone.

It uses only hashlib, base64 and an Ed25519 library, never the project's code, so a test that
passes with it shows the published format is enough to check the log. It verifies that a
leaf is in the tree a signed checkpoint commits to, with the log's pinned verifier key and,
optionally, a required witness cosignature. The Merkle root is recomputed by recursion on
the tree's shape (not by RFC 9162's bit loop that the project uses), for independence.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

NOTE_SIGNATURE = 0x01
WITNESS_COSIGNATURE = 0x04


class VerifyError(Exception):
    pass


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    k = 1
    while k * 2 < size:
        k *= 2
    return k


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """Rebuild the root from a bottom-up audit path: the last hash is the top-level sibling."""
    if not 0 <= index < size:
        raise VerifyError(f"leaf index {index} is not below the tree size {size}")
    if size == 1:
        if proof:
            raise VerifyError("the inclusion proof has more hashes than the tree has levels")
        return leaf
    if not proof:
        raise VerifyError("the inclusion proof has fewer hashes than the tree has levels")
    k = _split(size)
    *inner, sibling = proof
    if index < k:
        return _node(root_from_inclusion(leaf, index, k, inner), sibling)
    return _node(sibling, root_from_inclusion(leaf, index - k, size - k, inner))


def parse_vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    """``name+hexid+base64(type || key)`` -> (name, key id, type, 32-byte public key)."""
    try:
        name, id_hex, key64 = vkey.strip().split("+", 2)
        raw = base64.b64decode(key64, validate=True)
        kid = bytes.fromhex(id_hex)
    except ValueError as exc:
        raise VerifyError(f"malformed verifier key {vkey!r}: {exc}") from None
    if len(raw) != 33 or len(kid) != 4:
        raise VerifyError(f"verifier key {name!r} does not hold a type byte and a 32-byte key")
    if hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4] != kid:
        raise VerifyError(f"verifier key {name!r}: the key id does not match the key")
    return name, kid, raw[0], raw[1:]


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """(signed text, [(key name, base64-decoded key id || signature)])."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise VerifyError("not a signed note: no blank line before the signatures, or no final newline")
    signatures = []
    for line in note[cut + 2 : -1].split("\n"):
        if not line.startswith("\u2014 ") or line.count(" ") != 2:
            raise VerifyError(f"malformed signature line {line!r}")
        _, name, sig64 = line.split(" ")
        try:
            signatures.append((name, base64.b64decode(sig64, validate=True)))
        except ValueError:
            raise VerifyError(f"signature line of {name!r} is not base64") from None
    return note[: cut + 1], signatures


def check_signature(note: str, vkey: str) -> int | None:
    """Verify ``note``'s signature by ``vkey``; returns the cosigning time for a witness key, else None."""
    name, kid, kind, public = parse_vkey(vkey)
    text, signatures = split_note(note)
    mine = [sig[4:] for signer, sig in signatures if signer == name and sig[:4] == kid]
    if not mine:
        raise VerifyError(f"the note carries no signature by {name!r}")
    key = Ed25519PublicKey.from_public_bytes(public)
    for sig in mine:
        if kind == WITNESS_COSIGNATURE:
            if len(sig) != 72:
                raise VerifyError(f"the cosignature by {name!r} is not 8 + 64 bytes")
            stamp = int.from_bytes(sig[:8], "big")
            message, sig = f"cosignature/v1\ntime {stamp}\n{text}".encode(), sig[8:]
        elif kind == NOTE_SIGNATURE:
            stamp, message = None, text.encode()
        else:
            raise VerifyError(f"verifier key {name!r} has the unsupported type {kind}")
        try:
            key.verify(sig, message)
        except InvalidSignature:
            raise VerifyError(f"the signature by {name!r} is invalid") from None
    return stamp


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    lines = text.split("\n")
    if len(lines) < 4 or not lines[0] or not lines[1].isascii() or not lines[1].isdigit():
        raise VerifyError("the checkpoint does not start with an origin, a decimal size and a root")
    if lines[1] != str(int(lines[1])):
        raise VerifyError(f"the checkpoint size {lines[1]!r} has leading zeros")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise VerifyError("the checkpoint root is not 32 bytes")
    return lines[0], int(lines[1]), root


def verify_leaf(
    leaf: bytes,
    index: int,
    proof: list[bytes],
    checkpoint_note: str,
    log_vkey: str,
    witness_vkey: str | None = None,
) -> tuple[str, int, bytes]:
    """Check that ``leaf`` (its leaf hash) is leaf ``index`` of the checkpointed tree.

    The checkpoint must be signed by ``log_vkey`` and, if given, cosigned by ``witness_vkey``.
    Returns the checkpoint's (origin, size, root)."""
    check_signature(checkpoint_note, log_vkey)
    if witness_vkey is not None and check_signature(checkpoint_note, witness_vkey) is None:
        raise VerifyError("the witness key given is not a cosignature/v1 key")
    origin, size, root = parse_checkpoint(split_note(checkpoint_note)[0])
    if origin != parse_vkey(log_vkey)[0]:
        raise VerifyError(f"the checkpoint's origin {origin!r} is not the log key's name")
    if root_from_inclusion(leaf, index, size, proof) != root:
        raise VerifyError(f"leaf {index} is not in the tree of size {size}: the proof leads to another root")
    return origin, size, root


# -- whole bundles (docs/audit-format.md, "Event encoding" and "Leaf data") ------------------


def _canonical(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def event_hash_v2(prev: str, uid: str, event: dict) -> str:
    head = _canonical(
        [uid, event["seq"], event["event"], event["from"], event["to"], event["actor"], event["role"], event["flow"],
         event["at"]]
    )  # fmt: skip
    body = f"{prev}|{head[:-1]},{_canonical(event['guards'])},{_canonical(event['payload'])},"
    body += f"{_canonical(event['changes'])}]"
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def event_leaf_data(uid: str, seq: int, digest: str) -> bytes:
    return ("gzsb-log/1 event\n" + _canonical([uid, seq, digest]) + "\n").encode("utf-8")


def verify_bundle(bundle_text: str, log_vkey: str, witness_vkey: str | None = None) -> tuple[str, int, int]:
    """Check a gzsb-bundle/1: flow text, genesis, every event hash and the chain, the head,
    the redacted data rebuilt from the changes, each leaf's inclusion in the signed (and
    cosigned) checkpoint. Returns (application uid, events, events proven in the log)."""
    bundle = json.loads(bundle_text)
    if bundle.get("format") != "gzsb-bundle/1":
        raise VerifyError("not a gzsb-bundle/1")
    header, *lines = bundle["history"]
    head = json.loads(header)
    if hashlib.sha256(head["flow_yaml"].encode("utf-8")).hexdigest() != head["flow"]:
        raise VerifyError("the flow text does not match its SHA-256")
    uid = head["application"]
    events = [json.loads(line) for line in lines]
    first_flow = events[0]["flow"] if events else head["flow"]
    prev = hashlib.sha256(f"genesis|{uid}|{first_flow}".encode()).hexdigest()
    data: dict[str, str] = {}
    for number, event in enumerate(events, start=1):
        if event["seq"] != number or event["prev"] != prev:
            raise VerifyError(f"seq {number}: the chain is broken")
        if event_hash_v2(prev, uid, event) != event["hash"]:
            raise VerifyError(f"seq {number}: the event hash does not match its content")
        for key, value in (event["changes"] or {}).get("set", {}).items():
            data[key] = _canonical(value)
        for key in (event["changes"] or {}).get("unset", []):
            data.pop(key, None)
        prev = event["hash"]
    if prev != head["head"]:
        raise VerifyError("the header's head is not the last event's hash")
    if {k: _canonical(v) for k, v in bundle["data"].items()} != data:
        raise VerifyError("the application's data differs from what its events recorded")
    note = bundle["checkpoint"]
    check_signature(note, log_vkey)
    if witness_vkey is not None and check_signature(note, witness_vkey) is None:
        raise VerifyError("the witness key given is not a cosignature/v1 key")
    _origin, size, root = parse_checkpoint(split_note(note)[0])
    by_seq = {event["seq"]: event for event in events}
    for leaf in bundle["leaves"]:
        event = by_seq[leaf["seq"]]
        proof = [base64.b64decode(h, validate=True) for h in leaf["proof"]]
        computed = root_from_inclusion(leaf_hash(event_leaf_data(uid, event["seq"], event["hash"])), leaf["index"],
                                       size, proof)  # fmt: skip
        if computed != root:
            raise VerifyError(f"seq {event['seq']}: its leaf {leaf['index']} is not in the checkpoint")
    return uid, len(events), len(bundle["leaves"])
