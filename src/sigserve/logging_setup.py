"""Logging for the CLI: readable lines, or one JSON object per line for log collectors.

Every line goes through `sigserve.redact` on its way out: a registry URI with a password, a
presigned artifact URL or an Authorization header is masked whichever library logged it (httpx
logs each request's URL). The redaction lives in the formatters, which gunicorn's handlers reuse
(server/run.py), so it holds under `-w N` too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from sigserve.redact import redact_text

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CHATTY_LIBRARIES = ("httpx", "httpcore")  # a line per registry request: shown with --log-level debug only


class RedactingFormatter(logging.Formatter):
    """The standard text format, with secrets masked in the message, traceback and stack."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """Access-log fields become top-level keys, so collectors can filter on status or latency."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            document.update(access)
        if record.exc_info:
            document["exception"] = redact_text(self.formatException(record.exc_info))
        if record.stack_info:
            document["stack"] = redact_text(self.formatStack(record.stack_info))
        return orjson.dumps(document, default=str).decode()  # a value JSON lacks is logged as its str()


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else RedactingFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if level.lower() == "debug" else logging.WARNING)
