"""SMS senders. The default stores messages in a table a development page lists."""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.orm import Session

from gzsb.models import SmsMessage
from gzsb.security import Vault, mask_mobile

log = logging.getLogger(__name__)


class SmsSender(Protocol):
    def send(self, mobile: str, body: str) -> str: ...


class OutboxSms:
    """Works offline: the message is stored (mobile encrypted) and logged masked."""

    def __init__(self, session: Session, vault: Vault) -> None:
        self.session = session
        self.vault = vault

    def send(self, mobile: str, body: str) -> str:
        message = SmsMessage(to_masked=mask_mobile(mobile), to_enc=self.vault.encrypt(mobile), body=body)
        self.session.add(message)
        self.session.flush()
        log.info("SMS to %s stored as message %d", message.to_masked, message.id)
        return f"outbox:{message.id}"
