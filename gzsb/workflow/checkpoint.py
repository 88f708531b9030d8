"""Signed checkpoints of the transparency log, in the C2SP formats.

* c2sp.org/signed-note: a text ending in a newline, a blank line, then signature lines
  ``— <key name> <base64(4-byte key ID || signature)>``. Ed25519 (type 0x01) signs the text.
  Key ID = SHA-256(name || 0x0A || type || public key)[:4]. Verifier keys are
  ``<name>+<hex key ID>+<base64(type || public key)>``, signer keys
  ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || 32-byte seed)>``.
* c2sp.org/tlog-checkpoint: the text is the origin, the tree size in decimal, the base64
  root hash, then optional non-empty extension lines.
* c2sp.org/tlog-cosignature (Ed25519 cosignature/v1, type 0x04): a witness signs
  ``cosignature/v1\\ntime <unix seconds>\\n`` + the checkpoint text; the signature bytes are
  the 8-byte big-endian timestamp followed by the 64-byte Ed25519 signature.

Verification follows the note rules: lines from unknown keys (name and key ID not both
matching) are ignored, a known key whose signature fails rejects the whole note, and a note
with no verified known signature is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
SIG_PREFIX = "\u2014 "  # em dash, space
COSIGNATURE_HEADER = "cosignature/v1\n"
MAX_SIGNATURES = 100  # the cap of Go's reference implementation; the spec asks for at least 16
_ALG_NAMES = {ALG_ED25519: "Ed25519 (0x01)", ALG_COSIGNATURE_V1: "Ed25519 cosignature/v1 (0x04)"}
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ValueError):
    """A key, note or checkpoint is malformed or does not verify; the message says what."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not valid base64: {text!r}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_key_name(name: str) -> str:
    if not name:
        raise NoteError("a key name must not be empty")
    if "+" in name or any(ch.isspace() for ch in name):
        raise NoteError(f"key name {name!r} must not contain spaces or '+'")
    if any(ord(ch) < 0x20 for ch in name):
        raise NoteError(f"key name {name!r} must not contain control characters")
    return name


def key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()[:4]


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: the header line, the time line, then the checkpoint text."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class Verifier:
    """A public key that can check signature lines: ``alg`` 0x01 (note) or 0x04 (cosignature/v1)."""

    name: str
    alg: int
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.alg, self.public_key)

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"verifier key {vkey!r} must read <name>+<8 hex digits>+<base64 key>")
        name, hash_hex, key64 = parts
        check_key_name(name)
        if not _HEX8.fullmatch(hash_hex):
            raise NoteError(f"verifier key {name!r}: key ID {hash_hex!r} must be 8 hex digits")
        raw = _b64decode(key64, f"verifier key {name!r}")
        if len(raw) != 33:
            raise NoteError(f"verifier key {name!r}: expected a type byte and a 32-byte Ed25519 key, got {len(raw)}")
        if raw[0] not in _ALG_NAMES:
            raise NoteError(f"verifier key {name!r}: unsupported signature type 0x{raw[0]:02x}")
        verifier = cls(name, raw[0], raw[1:])
        if verifier.key_id.hex() != hash_hex.lower():
            raise NoteError(
                f"verifier key {name!r}: key ID {hash_hex} does not match its key (expected {verifier.key_id.hex()})"
            )
        return verifier

    def encode(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([self.alg]) + self.public_key)}"

    def verify(self, text: str, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID) is this key's signature of the note text."""
        message = text.encode("utf-8")
        if self.alg == ALG_COSIGNATURE_V1:
            if len(signature) != 8 + 64:
                return False
            message = cosignature_message(text, int.from_bytes(signature[:8], "big"))
            signature = signature[8:]
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A private key that writes signature lines: a log key (0x01) or a witness key (0x04)."""

    name: str
    alg: int
    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, name: str, alg: int = ALG_ED25519) -> Signer:
        if alg not in _ALG_NAMES:
            raise NoteError(f"unsupported signature type 0x{alg:02x}")
        return cls(check_key_name(name), alg, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key must read PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
        name, hash_hex, key64 = parts[2:]
        check_key_name(name)
        raw = _b64decode(key64, f"signer key {name!r}")
        if len(raw) != 33 or raw[0] not in _ALG_NAMES:
            raise NoteError(f"signer key {name!r}: expected a type byte 0x01 or 0x04 and a 32-byte Ed25519 seed")
        signer = cls(name, raw[0], Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if hash_hex.lower() != signer.verifier().key_id.hex():
            raise NoteError(f"signer key {name!r}: key ID {hash_hex} does not match its key")
        return signer

    def encode(self) -> str:
        seed = self.private_key.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.verifier().key_id.hex()}+{_b64(bytes([self.alg]) + seed)}"

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.alg, self.private_key.public_key().public_bytes_raw())

    def sign(self, text: str, timestamp: int | None = None) -> NoteSignature:
        """A signature line over the note text; a cosigner stamps it (now, by default)."""
        check_text(text)
        if self.alg == ALG_COSIGNATURE_V1:
            stamp = int(time.time()) if timestamp is None else timestamp
            if not 0 <= stamp < 2**63:
                raise NoteError(f"cosignature timestamp {stamp} is out of range")
            raw = stamp.to_bytes(8, "big") + self.private_key.sign(cosignature_message(text, stamp))
        else:
            raw = self.private_key.sign(text.encode("utf-8"))
        return NoteSignature(self.name, self.verifier().key_id, raw)


def generate_key(name: str, *, witness: bool = False) -> tuple[str, str]:
    """A new (signer key, verifier key) pair: a log key, or with ``witness`` a cosignature/v1 key."""
    signer = Signer.generate(name, ALG_COSIGNATURE_V1 if witness else ALG_ED25519)
    return signer.encode(), signer.verifier().encode()


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIG_PREFIX}{self.name} {_b64(self.key_id + self.signature)}\n"

    @property
    def timestamp(self) -> int | None:
        """The cosigning time carried by a cosignature/v1 signature (None for other lengths)."""
        return int.from_bytes(self.signature[:8], "big") if len(self.signature) == 72 else None


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def encode(self) -> str:
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)


def check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    bad = next((ch for ch in text if ord(ch) < 0x20 and ch != "\n"), None)
    if bad is not None:
        raise NoteError(f"note text contains the control character U+{ord(bad):04X}")


def parse_note(data: str | bytes) -> Note:
    """Split a signed note into its text and signature lines (nothing is verified here)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"note is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line between its text and its signatures")
    text, tail = data[: split + 1], data[split + 2 :]
    check_text(text)
    if not tail.endswith("\n"):
        raise NoteError("the last signature line must end with a newline")
    lines = tail[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signature lines, more than {MAX_SIGNATURES}")
    signatures = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"signature line {number} does not start with an em dash and a space: {line!r}")
        name, _, sig64 = line[len(SIG_PREFIX) :].partition(" ")
        try:
            check_key_name(name)
        except NoteError as exc:
            raise NoteError(f"signature line {number}: {exc}") from None
        raw = _b64decode(sig64, f"signature line {number} ({name})")
        if len(raw) < 5:
            raise NoteError(f"signature line {number} ({name}) is too short: {len(raw)} bytes")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


def sign_note(text: str, signers: Iterable[Signer], timestamp: int | None = None) -> str:
    """A signed note: ``text`` signed by every signer (a cosigner uses ``timestamp``)."""
    return Note(text, tuple(s.sign(text, timestamp) for s in signers)).encode()


def add_signatures(note: str | bytes, signers: Iterable[Signer], timestamp: int | None = None) -> str:
    """``note`` with more signature lines, e.g. a witness's cosignature; existing lines are kept."""
    parsed = parse_note(note)
    extra = tuple(s.sign(parsed.text, timestamp) for s in signers)
    return Note(parsed.text, parsed.signatures + extra).encode()


@dataclass(frozen=True)
class Opened:
    """A verified note: its text, the known keys that signed it and when cosigners did."""

    note: Note
    signed_by: tuple[str, ...]
    cosigned_at: Mapping[str, int]


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> Opened:
    """Verify ``note`` against pinned keys; unknown signature lines are ignored."""
    parsed = parse_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    signed: list[str] = []
    stamps: dict[str, int] = {}
    for sig in parsed.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(parsed.text, sig.signature):
            raise NoteError(f"the signature by {sig.name} ({sig.key_id.hex()}) does not verify")
        if sig.name not in signed:
            signed.append(sig.name)
        if verifier.alg == ALG_COSIGNATURE_V1 and sig.timestamp is not None:
            stamps[sig.name] = sig.timestamp
    if not signed:
        present = ", ".join(f"{s.name} ({s.key_id.hex()})" for s in parsed.signatures)
        wanted = ", ".join(f"{name} ({kid.hex()})" for name, kid in known) or "none"
        raise NoteError(f"no signature from a known key: the note is signed by {present}; known keys: {wanted}")
    return Opened(parsed, tuple(signed), stamps)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        if not self.origin or "\n" in self.origin:
            raise NoteError(f"checkpoint origin {self.origin!r} must be one non-empty line")
        if self.size < 0 or len(self.root) != 32:
            raise NoteError("checkpoint needs a size >= 0 and a 32-byte root hash")
        if any(not line or "\n" in line for line in self.extensions):
            raise NoteError("checkpoint extension lines must be non-empty single lines")
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), _b64(self.root), *self.extensions))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        check_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(f"a checkpoint has at least 3 lines (origin, size, root), this one has {len(lines)}")
        origin, size, root64, *extensions = lines
        if not origin:
            raise NoteError("checkpoint origin line is empty")
        if not _DECIMAL.fullmatch(size):
            raise NoteError(f"checkpoint tree size {size!r} is not a decimal number without leading zeros")
        root = _b64decode(root64, "checkpoint root hash")
        if len(root) != 32:
            raise NoteError(f"checkpoint root hash has {len(root)} bytes, expected 32")
        if any(not line for line in extensions):
            raise NoteError("checkpoint extension lines must not be empty")
        return cls(origin, int(size), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, log_signer: Signer) -> str:
    return sign_note(checkpoint.body(), [log_signer])


@dataclass(frozen=True)
class VerifiedCheckpoint:
    checkpoint: Checkpoint
    opened: Opened

    @property
    def witnesses(self) -> tuple[str, ...]:
        return tuple(self.opened.cosigned_at)


def verify_checkpoint(
    note: str | bytes,
    log_key: Verifier,
    witness_keys: Iterable[Verifier] = (),
    *,
    required_witnesses: int = 0,
    origin: str | None = None,
) -> VerifiedCheckpoint:
    """Check a checkpoint note: signed by the log key, from the expected origin (the log key's
    name by default), and cosigned by at least ``required_witnesses`` of the witness keys."""
    witnesses = list(witness_keys)
    for key in witnesses:
        if key.alg != ALG_COSIGNATURE_V1:
            raise NoteError(f"witness key {key.name} must be a cosignature/v1 key (type 0x04)")
    opened = open_note(note, [log_key, *witnesses])
    # open_note raised if a line of a pinned key failed, so a line of the log key here is a good one.
    if not any((sig.name, sig.key_id) == (log_key.name, log_key.key_id) for sig in opened.note.signatures):
        raise NoteError(f"the checkpoint is not signed by the log key {log_key.name} ({log_key.key_id.hex()})")
    checkpoint = Checkpoint.parse(opened.note.text)
    expected = log_key.name if origin is None else origin
    if checkpoint.origin != expected:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not the expected {expected!r}")
    if len(opened.cosigned_at) < required_witnesses:
        have = ", ".join(opened.cosigned_at) or "none"
        raise NoteError(f"checkpoint needs {required_witnesses} witness cosignature(s), has {have}")
    return VerifiedCheckpoint(checkpoint, opened)
