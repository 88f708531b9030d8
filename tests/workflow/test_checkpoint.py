"""Signed notes, checkpoints and witness cosignatures in the C2SP formats: known answers from
the Go reference implementation, round trips, and every kind of forgery refused."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gzsb.workflow.checkpoint import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    add_signatures,
    generate_key,
    key_id,
    open_note,
    parse_note,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
)

# The example key pair and note of golang.org/x/mod/sumdb/note (note_test.go / example_test.go).
# Ed25519 is deterministic, so signing the same text must give the same line byte for byte.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"

ORIGIN = "gzsb.example/log"
ROOT = hashlib.sha256(b"some root").digest()
LOG = Signer.generate(ORIGIN)
WITNESS = Signer.generate("kaoshiyuan.example/witness", ALG_COSIGNATURE_V1)


def test_go_reference_vector() -> None:
    signer = Signer.parse(GO_SKEY)
    assert signer.encode() == GO_SKEY
    assert signer.verifier().encode() == GO_VKEY
    assert Verifier.parse(GO_VKEY) == signer.verifier()
    note = sign_note(GO_TEXT, [signer])
    assert note == GO_TEXT + "\n" + GO_SIG
    opened = open_note(note, [Verifier.parse(GO_VKEY)])
    assert opened.note.text == GO_TEXT and opened.signed_by == ("PeterNeumann",)


def test_key_id_and_key_strings() -> None:
    pub = LOG.verifier().public_key
    assert LOG.verifier().key_id == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pub).digest()[:4]
    assert key_id(ORIGIN, ALG_ED25519, pub) != key_id(ORIGIN, ALG_COSIGNATURE_V1, pub)
    skey, vkey = generate_key("example.org/w", witness=True)
    assert skey.startswith("PRIVATE+KEY+example.org/w+")
    verifier = Verifier.parse(vkey)
    assert verifier.alg == ALG_COSIGNATURE_V1 and base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    assert Signer.parse(skey).verifier() == verifier


@pytest.mark.parametrize(
    ("vkey", "problem"),
    [
        ("PeterNeumann+c74f20a3", "must read"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "not valid base64"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy", "32-byte"),
        ("PeterNeumann+c74f20a3+AxpcAQ" + "A" * 38, "unsupported signature type 0x03"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "spaces"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "empty"),
    ],
)
def test_bad_verifier_keys_are_named(vkey: str, problem: str) -> None:
    with pytest.raises(NoteError, match=problem):
        Verifier.parse(vkey)


def test_bad_signer_keys_are_named() -> None:
    with pytest.raises(NoteError, match="PRIVATE"):
        Signer.parse(GO_VKEY)
    with pytest.raises(NoteError, match="does not match"):
        Signer.parse(GO_SKEY.replace("c74f20a3", "c74f20a4"))


def test_checkpoint_body_round_trip_with_extensions() -> None:
    cp = Checkpoint(ORIGIN, 20852163, ROOT, ("ext one", "ext two"))
    body = cp.body()
    assert body == f"{ORIGIN}\n20852163\n{base64.b64encode(ROOT).decode()}\next one\next two\n"
    assert Checkpoint.parse(body) == cp
    note = sign_checkpoint(cp, LOG)
    verified = verify_checkpoint(note, LOG.verifier())
    assert verified.checkpoint == cp and verified.checkpoint.extensions == ("ext one", "ext two")
    # The extension lines are signed: changing one breaks the signature.
    with pytest.raises(NoteError, match="does not verify"):
        verify_checkpoint(note.replace("ext two", "ext 2"), LOG.verifier())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (f"{ORIGIN}\n12\n", "at least 3 lines"),
        (f"\n12\n{base64.b64encode(ROOT).decode()}\n", "origin line is empty"),
        (f"{ORIGIN}\n012\n{base64.b64encode(ROOT).decode()}\n", "leading zeros"),
        (f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n", "not a decimal"),
        (f"{ORIGIN}\n١٢\n{base64.b64encode(ROOT).decode()}\n", "not a decimal"),
        (f"{ORIGIN}\n12\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes"),
        (f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}", "end with a newline"),
    ],
)
def test_bad_checkpoint_bodies_are_named(body: str, problem: str) -> None:
    with pytest.raises(NoteError, match=problem):
        Checkpoint.parse(body)


def _note() -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), LOG)


def test_forgeries_are_refused() -> None:
    note = _note()
    log = LOG.verifier()
    verify_checkpoint(note, log)
    # The body edited: the size.
    with pytest.raises(NoteError, match="does not verify"):
        verify_checkpoint(note.replace("\n7\n", "\n8\n", 1), log)
    # Signed by an unknown key only (same name, other key): its line is ignored, so nothing verifies.
    impostor = Signer.generate(ORIGIN)
    forged = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), impostor)
    with pytest.raises(NoteError, match="no signature from a known key"):
        verify_checkpoint(forged, log)
    # The right signature under another key name: an unknown key, ignored.
    with pytest.raises(NoteError, match="no signature from a known key"):
        verify_checkpoint(note.replace(f"— {ORIGIN} ", "— other.example/log "), log)
    # A truncated signature: a known key whose signature fails rejects the note.
    line = note.rsplit("\n", 2)[1]
    raw = base64.b64decode(line.split(" ")[2])
    short = note.replace(line, f"— {ORIGIN} {base64.b64encode(raw[:-8]).decode()}")
    with pytest.raises(NoteError, match="does not verify"):
        verify_checkpoint(short, log)
    with pytest.raises(NoteError, match="too short"):
        parse_note(note.replace(line, f"— {ORIGIN} {base64.b64encode(raw[:3]).decode()}"))
    # A valid note next to a bad line from the same known key is still rejected.
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note + short.rsplit("\n", 2)[1] + "\n", [log])
    # The log key's origin must match unless told otherwise.
    other = sign_checkpoint(Checkpoint("elsewhere.example", 7, ROOT), LOG)
    with pytest.raises(NoteError, match="origin"):
        verify_checkpoint(other, log)
    assert verify_checkpoint(other, log, origin="elsewhere.example").checkpoint.size == 7


@pytest.mark.parametrize(
    ("mangle", "problem"),
    [
        (lambda n: n.replace("\n\n", "\n"), "no blank line"),
        (lambda n: n.rstrip("\n"), "must end with a newline"),
        (lambda n: n.replace("— ", "-- "), "em dash"),
        (lambda n: n.replace("\n7\n", "\n7\t\n"), "control character"),
        (lambda n: n[:-3] + "!!\n", "not valid base64"),
    ],
)
def test_malformed_notes_are_named(mangle: Callable[[str], str], problem: str) -> None:
    with pytest.raises(NoteError, match=problem):
        open_note(mangle(_note()), [LOG.verifier()])
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note(b"\xff\n\n")


def test_unknown_signature_lines_are_ignored() -> None:
    stranger = Signer.generate("stranger.example/key")
    note = add_signatures(_note(), [stranger])
    opened = open_note(note, [LOG.verifier()])
    assert opened.signed_by == (ORIGIN,)
    assert len(opened.note.signatures) == 2


def test_witness_cosignature_layout_and_requirement() -> None:
    note = _note()
    cosigned = add_signatures(note, [WITNESS], timestamp=1679315147)
    assert cosigned.startswith(note)
    line = cosigned.rsplit("\n", 2)[1]
    assert line.startswith("— kaoshiyuan.example/witness ")
    raw = base64.b64decode(line.split(" ")[2])
    wkey = WITNESS.verifier()
    assert len(raw) == 4 + 8 + 64
    assert raw[:4] == hashlib.sha256(wkey.name.encode() + b"\n\x04" + wkey.public_key).digest()[:4]
    assert int.from_bytes(raw[4:12], "big") == 1679315147
    body = parse_note(note).text
    # Checked with the bare library: the signed message is the two header lines + the body.
    Ed25519PublicKey.from_public_bytes(wkey.public_key).verify(
        raw[12:], b"cosignature/v1\ntime 1679315147\n" + body.encode()
    )
    verified = verify_checkpoint(cosigned, LOG.verifier(), [wkey], required_witnesses=1)
    assert verified.witnesses == (wkey.name,)
    assert verified.opened.cosigned_at == {wkey.name: 1679315147}
    with pytest.raises(NoteError, match="needs 1 witness cosignature"):
        verify_checkpoint(note, LOG.verifier(), [wkey], required_witnesses=1)
    # A changed timestamp is caught: it is signed.
    forged = raw[:4] + (1679315148).to_bytes(8, "big") + raw[12:]
    with pytest.raises(NoteError, match="does not verify"):
        verify_checkpoint(
            cosigned.replace(line, line.rsplit(" ", 1)[0] + " " + base64.b64encode(forged).decode()),
            LOG.verifier(),
            [wkey],
        )
    # A witness cannot stand in for the log, and a plain Ed25519 key is not a witness key.
    with pytest.raises(NoteError, match="not signed by the log key"):
        verify_checkpoint(sign_note(body, [WITNESS]), LOG.verifier(), [wkey])
    with pytest.raises(NoteError, match="cosignature/v1 key"):
        verify_checkpoint(cosigned, LOG.verifier(), [LOG.verifier()])
