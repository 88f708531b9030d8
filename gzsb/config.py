"""Settings. The only module that reads the environment."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("GZSB_INSTANCE", ROOT / "instance"))


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


class Config:
    TESTING = False
    SECRET_KEY = _env("SECRET_KEY", "dev-only-secret-change-me")
    # Separate keys: encrypting personal data, blind indexes for lookups, and the keyed
    # hashes that replace sensitive fields in the history.
    DATA_KEY = _env("DATA_KEY", "dev-only-data-key-change-me")
    INDEX_KEY = _env("INDEX_KEY", "dev-only-index-key-change-me")
    HISTORY_KEY = _env("HISTORY_KEY", "dev-only-history-key-change-me")

    SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL", f"sqlite:///{INSTANCE / 'gzsb.sqlite3'}")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    REDIS_URL = _env("REDIS_URL")
    HUEY_SQLITE_PATH = str(INSTANCE / "huey.sqlite3")
    HUEY_IMMEDIATE = False

    FLOW_FILE = str(ROOT / "flows" / "enrollment.yaml")
    FLOW_NAME = "tianjin-gzsb"

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env("SESSION_COOKIE_SECURE", "0") == "1"
    WTF_CSRF_TIME_LIMIT = None

    # SMS templates named by the flow's `notify` section (Chinese, str.format fields).
    SMS_TEMPLATES = {
        "manual_identity_queued": "【天津高职升本】{name}同学，您的身份认证已转确认点人工审核，请留意后续短信。",
        "identity_verified": "【天津高职升本】{name}同学，您的身份认证已通过，请在报名期内完成网上支付。",
        "materials_required": "【天津高职升本】{name}同学，已收到报名费，请登录系统上传审核材料。",
        "registration_approved": "【天津高职升本】{name}同学，您的报名已完成，请登录系统下载报名表。",
        "otp": "【天津高职升本】您的验证码是{code}，10分钟内有效。如非本人操作请忽略。",
        "password_reset": "【天津高职升本】{name}同学，您的登录密码已重置。如非本人操作，请立即联系所在确认点。",
    }

    # Accounts and SMS (issue 3). Twilio is used when all three are set, else the outbox.
    TWILIO_ACCOUNT_SID = _env("TWILIO_ACCOUNT_SID")
    TWILIO_AUTH_TOKEN = _env("TWILIO_AUTH_TOKEN")
    TWILIO_FROM = _env("TWILIO_FROM")
    TWILIO_TIMEOUT = float(_env("TWILIO_TIMEOUT", "10"))
    # The /dev/sms page listing outbox messages (always on when debugging or testing).
    SMS_DEV_PAGE = _env("SMS_DEV_PAGE", "0") == "1"
    # SMS verification codes: HMAC key of the stored hashes, lifetime, tries and send limits.
    OTP_KEY = _env("OTP_KEY", "dev-only-otp-key-change-me")
    OTP_TTL_SECONDS = int(_env("OTP_TTL_SECONDS", "600"))
    OTP_MAX_ATTEMPTS = int(_env("OTP_MAX_ATTEMPTS", "5"))
    OTP_RESEND_SECONDS = int(_env("OTP_RESEND_SECONDS", "60"))
    OTP_DAILY_LIMIT = int(_env("OTP_DAILY_LIMIT", "10"))
    # Per client IP (in memory, per process): failures before a pause, the window, the pause.
    IP_LOGIN_FAILURES = int(_env("IP_LOGIN_FAILURES", "10"))
    IP_WINDOW_SECONDS = int(_env("IP_WINDOW_SECONDS", "900"))
    IP_BLOCK_SECONDS = int(_env("IP_BLOCK_SECONDS", "900"))
    IP_SMS_PER_HOUR = int(_env("IP_SMS_PER_HOUR", "20"))

    @classmethod
    def is_sqlite(cls) -> bool:
        return cls.SQLALCHEMY_DATABASE_URI.startswith("sqlite")


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret"
    DATA_KEY = "test-data-key"
    INDEX_KEY = "test-index-key"
    HISTORY_KEY = "test-history-key"
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    WTF_CSRF_ENABLED = True
    HUEY_IMMEDIATE = True


def test_database_url() -> str:
    """The PostgreSQL URL of the integration tests (empty: they skip)."""
    return _env("TEST_DATABASE_URL")


test_database_url.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def test_redis_url() -> str:
    return _env("TEST_REDIS_URL")


test_redis_url.__test__ = False  # type: ignore[attr-defined]
