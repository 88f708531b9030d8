"""Encryption of personal data at rest, blind indexes for lookups, and masking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

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

    def seal_bytes(self, data: bytes, context: str) -> bytes:
        """Files (appeal images): ``context`` (e.g. the storage key) is bound as associated
        data, so a stored blob cannot be passed off under another key."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, context.encode("utf-8"))

    def open_bytes(self, blob: bytes, context: str) -> bytes:
        return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], context.encode("utf-8"))

    def index(self, text: str) -> str:
        normalized = text.strip().upper()
        return hmac.new(self._index_key, normalized.encode("utf-8"), hashlib.sha256).hexdigest()


# Personal fields of the application's basic information kept only encrypted in
# ``applications.data``: one ``sealed`` value (AES-GCM, base64) replaces them. The history's
# redactor treats ``sealed`` as sensitive (a keyed hash of the stored text, deterministic).
SEALED_FIELDS = ("id_number", "mobile", "address")
SEALED = "sealed"


def seal_fields(vault: Vault, section: Mapping[str, Any]) -> dict[str, Any]:
    """``section`` with the personal fields replaced by one encrypted ``sealed`` value."""
    out = {k: v for k, v in section.items() if k not in SEALED_FIELDS}
    secret = {k: section[k] for k in SEALED_FIELDS if k in section}
    if secret:
        text = json.dumps(secret, ensure_ascii=False, sort_keys=True)
        out[SEALED] = base64.b64encode(vault.encrypt(text)).decode("ascii")
    return out


def open_fields(vault: Vault, section: Mapping[str, Any] | None) -> dict[str, Any]:
    """The section as typed. Fields present in clear (rows written before sealing, or edited
    by hand) are taken as they are."""
    section = section or {}
    out: dict[str, Any] = json.loads(vault.decrypt(base64.b64decode(section[SEALED]))) if section.get(SEALED) else {}
    out.update((k, v) for k, v in section.items() if k != SEALED)
    return out


def basic_info_of(data: Mapping[str, Any] | None, vault: Vault | None = None) -> dict[str, Any]:
    """The one reader of an application's basic information (decrypted): pages, the 报名表,
    the staff console and the steps all go through here. Default vault: the current app's."""
    vault = vault if vault is not None else current_app.extensions["gzsb.vault"]
    return open_fields(vault, (data or {}).get("basic_info"))


def mask_id_number(value: str) -> str:
    """110101********1234: region and last four, as on 学信网."""
    if len(value) < 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_mobile(value: str) -> str:
    """137****0001 (a +86 prefix is kept: +86137****0001)."""
    prefix = ""
    if value.startswith("+86") and len(value) > 10:
        prefix, value = "+86", value[3:]
    if len(value) < 7:
        return prefix + "*" * len(value)
    return prefix + value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(value: str) -> str:
    return value[:1] + "*" * max(len(value) - 1, 1) if value else ""


# Whole ID numbers (18 characters, last may be X) and mainland mobiles (11 digits from 1),
# not part of a longer run of letters or digits (hashes and uids are left alone).
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_MOBILE_IN_TEXT = re.compile(r"(?<![0-9A-Za-z+])(?:\+86)?1[3-9]\d{9}(?![0-9A-Za-z])")


def mask_text(text: str) -> str:
    """Mask every ID number and mobile number found in free text (log lines, messages)."""
    text = _ID_IN_TEXT.sub(lambda m: mask_id_number(m.group(0)), text)
    return _MOBILE_IN_TEXT.sub(lambda m: mask_mobile(m.group(0)), text)


_masking_installed = False


def install_log_masking() -> None:
    """Every log record of the process gets its ID numbers and mobiles masked when created.

    A LogRecord factory rather than a handler filter, so it holds whatever handlers the
    server (gunicorn, flask run, pytest) installs. Idempotent.
    """
    global _masking_installed
    if _masking_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a broken format string is logging's business
            return record
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return record

    logging.setLogRecordFactory(factory)
    _masking_installed = True
