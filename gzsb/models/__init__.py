"""Database models, one module per part of the product; import them from here.

Personal data is encrypted; lookups go through keyed blind indexes."""

from __future__ import annotations

from gzsb.models.admin import (
    AdminAction,
    FlowJob,
    FlowLive,
    FlowProposal,
    FlowPublication,
)
from gzsb.models.appeals import AppealCase, AppealEvent, AppealFile
from gzsb.models.audit import (
    AuditRun,
    LogCheckpoint,
    LogCosignature,
    LogLeaf,
    LogNode,
    LogState,
)
from gzsb.models.core import (
    Account,
    Application,
    ConfirmationPoint,
    FlowVersion,
    HistoryEvent,
    OtpCode,
    Outbox,
    SmsMessage,
    Timer,
    new_uid,
    utcnow,
)
from gzsb.models.files import StoredFile
from gzsb.models.onsite import OnsiteBooking, OnsiteSlot
from gzsb.models.payments import (
    OrderStatus,
    Payment,
    PaymentNotification,
    PaymentOrder,
    SandboxTrade,
)
from gzsb.models.records import (
    CorrectionRequest,
    FaceAttemptDay,
    Institution,
    Major,
    RegistrationForm,
    RegistryRecord,
    Upload,
)

__all__ = [
    "Account",
    "AdminAction",
    "AppealCase",
    "AppealEvent",
    "AppealFile",
    "Application",
    "AuditRun",
    "ConfirmationPoint",
    "CorrectionRequest",
    "FaceAttemptDay",
    "FlowLive",
    "FlowJob",
    "FlowProposal",
    "FlowPublication",
    "FlowVersion",
    "HistoryEvent",
    "Institution",
    "LogCheckpoint",
    "LogCosignature",
    "LogLeaf",
    "LogNode",
    "LogState",
    "Major",
    "OnsiteBooking",
    "OnsiteSlot",
    "OrderStatus",
    "OtpCode",
    "Outbox",
    "Payment",
    "PaymentNotification",
    "PaymentOrder",
    "RegistrationForm",
    "RegistryRecord",
    "SandboxTrade",
    "SmsMessage",
    "StoredFile",
    "Timer",
    "Upload",
    "new_uid",
    "utcnow",
]
