"""SMS adapters: the offline outbox, the real twilio client over a fake HTTP client, the factory."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import select
from twilio.http import HttpClient
from twilio.http.response import Response

from gzsb.adapters.sms import OutboxSms, SmsFailed, TwilioSms, e164, sms_sender
from gzsb.bootstrap import vault
from gzsb.extensions import db
from gzsb.models import SmsMessage

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "auth-token-for-tests"
SENDER = "+15005550006"


class RecordingHttpClient(HttpClient):
    """Stands in for the network under the real twilio client: records, answers with a canned reply."""

    def __init__(self, status: int = 201, body: dict[str, Any] | None = None) -> None:
        super().__init__(logger=logging.getLogger("tests.twilio"), is_async=False)
        self.status = status
        self.body = body if body is not None else {"sid": "SM" + "a" * 32, "status": "queued"}
        self.requests: list[dict[str, Any]] = []

    def request(
        self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        self.requests.append(
            {"method": method, "uri": uri, "params": params, "data": data, "headers": headers, "auth": auth}
        )
        return Response(self.status, json.dumps(self.body))


def test_twilio_adapter_posts_the_message_to_the_messages_api() -> None:
    http = RecordingHttpClient()
    sender = TwilioSms(SID, TOKEN, SENDER, http_client=http)
    reference = sender.send("13700000001", "【天津高职升本】您的验证码是123456，10分钟内有效。")
    assert reference == "twilio:SM" + "a" * 32
    (sent,) = http.requests
    assert sent["method"] == "POST"
    assert sent["uri"] == f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
    assert sent["auth"] == (SID, TOKEN)
    assert sent["data"] == {
        "To": "+8613700000001",
        "From": SENDER,
        "Body": "【天津高职升本】您的验证码是123456，10分钟内有效。",
    }
    assert sent["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_twilio_refusal_becomes_a_chinese_sms_failure_without_the_number_in_the_log(caplog) -> None:
    http = RecordingHttpClient(
        400, {"code": 21211, "message": "The 'To' number +8613700000001 is not valid.", "status": 400}
    )
    sender = TwilioSms(SID, TOKEN, SENDER, http_client=http)
    with caplog.at_level(logging.INFO), pytest.raises(SmsFailed) as failed:
        sender.send("13700000001", "x")
    assert failed.value.public_message == "短信发送失败，请稍后再试"
    assert failed.value.http_status == 502
    assert "13700000001" not in caplog.text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("13700000001", "+8613700000001"), ("+8613700000001", "+8613700000001"), ("008613700000001", "+8613700000001")],
)
def test_numbers_are_sent_in_e164(raw: str, expected: str) -> None:
    assert e164(raw) == expected


def test_outbox_stores_the_message_with_the_mobile_encrypted(app, caplog) -> None:
    with caplog.at_level(logging.INFO):
        reference = OutboxSms(db.session, vault()).send("13700000001", "您的验证码是654321")
    db.session.commit()
    message = db.session.scalars(select(SmsMessage)).one()
    assert reference == f"outbox:{message.id}"
    assert message.to_masked == "137****0001"
    assert b"13700000001" not in message.to_enc
    assert vault().decrypt(message.to_enc) == "13700000001"
    assert "13700000001" not in caplog.text and "137****0001" in caplog.text


def test_factory_picks_twilio_only_with_all_three_settings(app) -> None:
    config = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": SENDER}
    assert isinstance(sms_sender(config, db.session, vault(), http_client=RecordingHttpClient()), TwilioSms)
    for missing in config:
        partial = {**config, missing: ""}
        assert isinstance(sms_sender(partial, db.session, vault()), OutboxSms)
    # The test configuration has no Twilio credentials: offline outbox.
    assert isinstance(sms_sender(app.config, db.session, vault()), OutboxSms)


def test_factory_passes_the_http_client_through(app) -> None:
    http = RecordingHttpClient()
    config = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": SENDER}
    sms_sender(config, db.session, vault(), http_client=http).send("13900000002", "hi")
    assert http.requests[0]["data"]["To"] == "+8613900000002"
    assert db.session.scalars(select(SmsMessage)).all() == []
