"""Typed errors. Each carries the HTTP status and MLflow error code it maps to."""

from __future__ import annotations


class SigserveError(Exception):
    """Base error: a message safe to show to the client, with the HTTP status and MLflow error
    code it maps to, and the metric that counts it: a refusal of the input by the signature
    (`schema_reason`, `sigserve_schema_errors_total`) or of the request itself
    (`rejection_reason`, `sigserve_rejected_requests_total`)."""

    status_code = 500
    error_code = "INTERNAL_ERROR"
    schema_reason: str | None = None
    rejection_reason: str | None = None
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
        self.schema_reason = reason


class InvalidParameter(SigserveError):
    """A `params` entry does not satisfy the params schema."""

    status_code = 400
    error_code = "INVALID_PARAMETER_VALUE"
    schema_reason = "params"


class EndpointNotFound(SigserveError):
    """No route at this path (or no model of this name, version or alias)."""

    status_code = 404
    error_code = "ENDPOINT_NOT_FOUND"


class ModelNotServed(EndpointNotFound):
    """A request named a model, version or alias this server does not serve."""

    error_code = "RESOURCE_DOES_NOT_EXIST"


class MethodNotAllowed(SigserveError):
    """The route exists, not with this method; the answer lists the allowed ones in `Allow`."""

    status_code = 405
    error_code = "BAD_REQUEST"

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


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
    rejection_reason = "timeout"


class ModelLoadError(SigserveError):
    """The model cannot be resolved or loaded: a start-up failure, never a request error.
    Its message often names a registry or artifact URI, so credentials in it are masked."""

    def __init__(self, message: str) -> None:
        from sigserve.redact import redact_text

        super().__init__(redact_text(message))


class ModelNotFound(ModelLoadError):
    pass


class UnsafeRegistryValue(ModelLoadError):
    """The registry named a version with a value no header, log line or path may carry."""


class RegistryLimitExceeded(ModelLoadError):
    """Resolving or downloading went past a limit (depth, files, bytes, deadline)."""


class WarmUpFailed(ModelLoadError):
    """A new version loaded but could not score its own serving example."""


class BodyTimedOut(SigserveError):
    """The client did not send its whole body within the body timeout."""

    status_code = 408
    error_code = "REQUEST_TIMEOUT"


class BodyTooLarge(SigserveError):
    status_code = 413
    error_code = "REQUEST_LIMIT_EXCEEDED"
    rejection_reason = "body_too_large"


class RequestLimitExceeded(SigserveError):
    """A body within the size limit that decodes to more than a request may: too many rows or
    columns, or too many decoded bytes. `reason` names the limit, for metrics."""

    status_code = 413
    error_code = "REQUEST_LIMIT_EXCEEDED"

    def __init__(self, message: str, reason: str = "decoded_too_large") -> None:
        super().__init__(message)
        self.rejection_reason = reason


class Overloaded(SigserveError):
    """Every scoring slot of this worker is busy; the client should retry shortly."""

    status_code = 503
    error_code = "TEMPORARILY_UNAVAILABLE"
    rejection_reason = "overloaded"


class ModelUnavailable(SigserveError):
    """A served model could not be brought into memory for this request (`--max-loaded-models`):
    its load failed, or takes longer than a request may wait. Tried again on the next request."""

    status_code = 503
    error_code = "TEMPORARILY_UNAVAILABLE"
    rejection_reason = "model_unavailable"

    def __init__(self, message: str, model: str) -> None:
        super().__init__(message)
        self.model = model  # the served key, for the request's metric label
