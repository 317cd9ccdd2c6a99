"""Typed errors. Each carries the HTTP status and MLflow error code it maps to."""

from __future__ import annotations


class SigserveError(Exception):
    """Base error: a message safe to show to the client."""

    status_code = 500
    error_code = "INTERNAL_ERROR"
    payload_format: str | None = None  # set once the body was read, for metrics

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(SigserveError):
    """The body could not be read as any supported payload."""

    status_code = 400
    error_code = "BAD_REQUEST"


class SchemaError(SigserveError):
    """The payload was read but does not satisfy the model signature.

    `reason` groups refusals for metrics: `type`, `missing_input` or `shape`.
    """

    status_code = 400
    error_code = "BAD_REQUEST"

    def __init__(self, message: str, reason: str = "type") -> None:
        super().__init__(message)
        self.reason = reason


class InvalidParameter(SigserveError):
    """A `params` entry does not satisfy the params schema."""

    status_code = 400
    error_code = "INVALID_PARAMETER_VALUE"


class UnsupportedMediaType(SigserveError):
    status_code = 415
    error_code = "UNSUPPORTED_MEDIA_TYPE"


class PredictionError(SigserveError):
    """The model itself raised. MLflow answers 400 here, and so do we."""

    status_code = 400
    error_code = "BAD_REQUEST"


class PredictionTimeout(SigserveError):
    status_code = 504
    error_code = "TIMEOUT"


class ModelLoadError(SigserveError):
    """The model cannot be resolved or loaded: a start-up failure, never a request error."""


class ModelNotFound(ModelLoadError):
    pass


class WarmUpFailed(ModelLoadError):
    """A new version loaded but could not score its own serving example."""


class BodyTooLarge(SigserveError):
    status_code = 413
    error_code = "REQUEST_LIMIT_EXCEEDED"


class Overloaded(SigserveError):
    """Every scoring slot of this worker is busy; the client should retry shortly."""

    status_code = 503
    error_code = "TEMPORARILY_UNAVAILABLE"
