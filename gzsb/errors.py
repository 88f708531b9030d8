"""One exception family. ``http_status`` is the only mapping to HTTP codes (see app.py)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error this service raises on purpose."""

    http_status = 500
    code = "error"
    # What a student may read; the English ``str(exc)`` is for logs and CLIs.
    public_message = "系统繁忙，请稍后再试"

    def __init__(self, message: str = "", *, public: str | None = None, **details: Any) -> None:
        super().__init__(message or self.__class__.__name__)
        if public is not None:
            self.public_message = public
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.public_message}
        body.update(self.details)
        return body


class ConfigurationError(ServiceError):
    """A flow, registry or setting is wrong: an admin's problem, not a student's."""

    code = "configuration"


class FlowError(ConfigurationError):
    """A flow file failed to load or validate; carries every problem found."""

    code = "invalid_flow"
    http_status = 400
    public_message = "流程文件有误"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.public_message, "problems": self.problems}


class NotFound(ServiceError):
    http_status = 404
    code = "not_found"
    public_message = "未找到"


class AuthRequired(ServiceError):
    http_status = 401
    code = "login_required"
    public_message = "请先登录"


class Forbidden(ServiceError):
    http_status = 403
    code = "forbidden"
    public_message = "无权进行此操作"


class InvalidInput(ServiceError):
    """A payload failed its schema; ``fields`` maps field → Chinese messages."""

    http_status = 422
    code = "invalid_input"
    public_message = "填写的信息有误，请检查"

    def __init__(self, message: str, fields: dict[str, Any]) -> None:
        super().__init__(message, fields=fields)
        self.fields = fields

    @property
    def form_errors(self) -> dict[str, Any]:
        """What a page shows beside its fields."""
        return self.fields


class GuardRefused(ServiceError):
    """Every branch of an event was refused by a guard; ``reasons`` are for the student."""

    http_status = 422
    code = "refused"

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message, public="；".join(reasons) or "当前不能进行此操作", reasons=reasons)
        self.reasons = reasons

    @property
    def form_errors(self) -> dict[str, Any]:
        """What a page shows: the reasons above the event's button (``_event``)."""
        return {"_event": self.reasons}


class SessionExpired(ServiceError):
    """A form came back without a valid session (its CSRF token is missing or stale, e.g.
    after 退出 in another tab). ``back`` is the form's page; ``relogin`` when the session is
    gone, so the page offers 重新登录 with next= back to it (the browser kept a draft)."""

    http_status = 400
    code = "csrf_400"
    public_message = "页面已过期，请刷新页面后重试"

    def __init__(self, message: str, *, back: str, relogin: bool) -> None:
        public = "登录已失效，请重新登录" if relogin else self.public_message
        super().__init__(message, public=public, back=back, relogin=relogin)
        self.back, self.relogin = back, relogin


class ConflictError(ServiceError):
    """Someone else changed the application first (or the event no longer applies)."""

    http_status = 409
    code = "conflict"
    public_message = "信息已被更新，请刷新页面后重试"


class EventNotAvailable(ConflictError):
    code = "event_not_available"
    public_message = "当前状态下不能进行此操作，请刷新页面"


class StaleApplication(ConflictError):
    code = "stale"


class MigrationRefused(ServiceError):
    """An application cannot be moved to another flow version as asked (its state is not
    in the target and not mapped, or is mapped to a state the target does not have)."""

    http_status = 409
    code = "migration_refused"
    public_message = "该报名无法迁移到所选流程版本"


class RateLimited(ServiceError):
    http_status = 429
    code = "rate_limited"
    public_message = "操作过于频繁，请稍后再试"


class ServiceUnavailable(ServiceError):
    """A bounded resource (image decoders, the database) is busy or down: try again later."""

    http_status = 503
    code = "unavailable"
    public_message = "系统繁忙，请稍后再试"
