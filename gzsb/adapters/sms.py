"""SMS senders. The default stores messages in a table a development page lists;
with Twilio credentials configured, messages go out through the ``twilio`` client."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy.orm import Session

from gzsb.common.security import Vault, mask_mobile
from gzsb.errors import ServiceError
from gzsb.models import SmsMessage

log = logging.getLogger(__name__)


class SmsFailed(ServiceError):
    """The SMS provider refused the message or could not be reached."""

    http_status = 502
    code = "sms_failed"
    public_message = "短信发送失败，请稍后再试"


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


def e164(mobile: str) -> str:
    """Mainland mobile numbers as Twilio wants them: 13700000001 → +8613700000001."""
    mobile = mobile.strip().replace(" ", "")
    if mobile.startswith("+"):
        return mobile
    if mobile.startswith("0086"):
        return "+" + mobile[2:]
    return "+86" + mobile


class TwilioSms:
    """Sends through Twilio's Messages API with the real ``twilio`` client.

    ``http_client`` is a ``twilio.http.HttpClient``; the default one uses ``requests``
    with a timeout, tests pass a fake that records the request.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_: str,
        *,
        http_client: Any = None,
        timeout: float = 10.0,
    ) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.from_ = from_
        self.client = Client(account_sid, auth_token, http_client=http_client or TwilioHttpClient(timeout=timeout))

    def send(self, mobile: str, body: str) -> str:
        from twilio.base.exceptions import TwilioException

        try:
            message = self.client.messages.create(to=e164(mobile), from_=self.from_, body=body)
        except (TwilioException, OSError) as exc:
            # The exception text may hold the number; log it masked only.
            log.warning("Twilio refused the SMS to %s: %s", mask_mobile(mobile), type(exc).__name__)
            raise SmsFailed(f"twilio: {type(exc).__name__}") from None
        log.info("SMS to %s sent through Twilio as %s", mask_mobile(mobile), message.sid)
        return f"twilio:{message.sid}"


def twilio_configured(config: Mapping[str, Any]) -> bool:
    return all(config.get(name) for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM"))


def sms_sender(config: Mapping[str, Any], session: Session, vault: Vault, *, http_client: Any = None) -> SmsSender:
    """Twilio when TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM are all set, else the outbox."""
    if twilio_configured(config):
        return TwilioSms(
            config["TWILIO_ACCOUNT_SID"],
            config["TWILIO_AUTH_TOKEN"],
            config["TWILIO_FROM"],
            http_client=http_client,
            timeout=float(config.get("TWILIO_TIMEOUT", 10.0)),
        )
    return OutboxSms(session, vault)
