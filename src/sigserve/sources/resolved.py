"""What resolving a model URI yields: a local directory, plus the registry facts behind it.

Those facts come from the registry, which sigserve does not control, and they end up in response
headers (`X-Model-Version`), log lines, metric labels and file names. So each one is checked for
characters that would break or forge them (CR, LF and other control characters) where it enters,
and the URIs kept for display have their credentials masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sigserve.errors import UnsafeRegistryValue
from sigserve.redact import redact_uri

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MAX_VALUE = 4096


def check_text(what: str, value: str | None) -> None:
    """Refuse a value that would break a header, forge a log line or name a path badly."""
    if value is None:
        return
    if not isinstance(value, str):
        raise UnsafeRegistryValue(f"Refusing the {what}: it is not text but {type(value).__name__}")
    if len(value) > _MAX_VALUE:
        raise UnsafeRegistryValue(f"Refusing the {what} {value[:60]!r}…: {len(value)} characters, over {_MAX_VALUE}")
    if _CONTROL.search(value):
        raise UnsafeRegistryValue(
            f"Refusing the {what} {value[:200]!r}: it contains control characters (CR, LF or the like), "
            "which would break response headers and forge log lines"
        )


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def printable(text: str) -> str:
    """`text` with control characters replaced: for values that escaped the checks (a local
    directory's name) on their way into a header or a log line."""
    return _CONTROL.sub("?", text) if _CONTROL.search(text) else text


@dataclass(frozen=True)
class ResolvedModel:
    uri: str
    path: Path
    registry: str | None = None
    name: str | None = None
    version: str | None = None
    aliases: tuple[str, ...] = ()
    stage: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        for what, value in (("model URI", self.uri), ("model name", self.name), ("model version", self.version),
                            ("stage", self.stage), ("source", self.source), *(("alias", a) for a in self.aliases)):
            check_text(what, value)
        # Shown in /metadata, `sigserve info` and logs: never with the credentials they may carry.
        object.__setattr__(self, "registry", redact_uri(self.registry))
        object.__setattr__(self, "source", redact_uri(self.source))
