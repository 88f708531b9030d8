"""Encryption of personal data at rest, blind indexes for lookups, and masking."""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


def _key(secret: str) -> bytes:
    # Config holds passphrases; AES-256 wants exactly 32 bytes.
    return hashlib.sha256(secret.encode("utf-8")).digest()


class Vault:
    """AES-256-GCM for personal fields; HMAC-SHA256 blind index for equality lookups."""

    def __init__(self, data_key: str, index_key: str) -> None:
        self._aead = AESGCM(_key(data_key))
        self._index_key = _key(index_key)

    def encrypt(self, text: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, text.encode("utf-8"), None)

    def decrypt(self, blob: bytes) -> str:
        return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], None).decode("utf-8")

    def index(self, text: str) -> str:
        normalized = text.strip().upper()
        return hmac.new(self._index_key, normalized.encode("utf-8"), hashlib.sha256).hexdigest()


def mask_id_number(value: str) -> str:
    """110101********1234: region and last four, as on 学信网."""
    if len(value) < 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_mobile(value: str) -> str:
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "****" + value[-4:]


def mask_name(value: str) -> str:
    return value[:1] + "*" * max(len(value) - 1, 1) if value else ""
