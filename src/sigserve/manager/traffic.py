"""How the versions of one served name share its traffic: all to the champion, a shadow copy to
the challenger, or a canary share of requests to it (sticky per value of a header)."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Literal

POLICIES = ("champion", "shadow", "canary")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # an RFC 9110 token, lower-cased


@dataclass(frozen=True)
class TrafficPolicy:
    policy: Literal["champion", "shadow", "canary"] = "champion"
    share: float = 0.0  # canary: the part of requests the challenger answers
    sticky_header: str | None = None  # canary: requests with the same value go to the same version

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"traffic policy {self.policy!r} is not one of {', '.join(POLICIES)}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"a canary share must be between 0 and 1, got {self.share:g}")
        if self.policy == "canary" and self.share == 0.0:
            raise ValueError("a canary needs a share above 0 (e.g. canary:0.1)")
        if self.policy != "canary" and (self.share or self.sticky_header is not None):
            raise ValueError(f"only a canary takes a share or a sticky header, not {self.policy}")
        if self.sticky_header is not None:
            header = self.sticky_header.strip().lower() if isinstance(self.sticky_header, str) else ""
            if not _HEADER_NAME.fullmatch(header):
                raise ValueError(f"the sticky header {self.sticky_header!r} is not an HTTP header name")
            object.__setattr__(self, "sticky_header", header)

    @classmethod
    def parse(cls, text: str) -> TrafficPolicy:
        """`shadow`, `canary:SHARE` or `canary:SHARE:HEADER` (the `--traffic NAME=…` value)."""
        policy, _, rest = text.strip().partition(":")
        policy = policy.strip().lower()
        if policy != "canary":
            if rest:
                raise ValueError(f"traffic policy {text!r}: only canary takes a share")
            return cls(policy)  # type: ignore[arg-type]
        share_text, _, header = rest.partition(":")
        try:
            share = float(share_text)
        except ValueError:
            raise ValueError(f"traffic policy {text!r}: the canary share must be a number, e.g. canary:0.1") from None
        return cls("canary", share, header.strip() or None)

    @classmethod
    def from_mapping(cls, value: object) -> TrafficPolicy:
        """The `traffic:` entry of a config file: a string as on the command line, or a mapping."""
        if isinstance(value, str):
            return cls.parse(value)
        if not isinstance(value, dict):
            raise ValueError(f"a traffic policy is a string or a mapping, got {type(value).__name__}")
        unknown = set(value) - {"policy", "share", "sticky_header"}
        if unknown:
            raise ValueError(f"unknown traffic policy keys {sorted(unknown)} (policy, share, sticky_header)")
        share = value.get("share", 0.0)
        if isinstance(share, bool) or not isinstance(share, (int, float)):
            raise ValueError(f"the canary share must be a number between 0 and 1, got {share!r}")
        return cls(str(value.get("policy", "champion")).strip().lower(), float(share),  # type: ignore[arg-type]
                   value.get("sticky_header"))

    def goes_to_challenger(self, sticky_value: bytes | None, model: str = "") -> bool:
        """A canary's draw: a hash of the model's name and the sticky value when there is one (so
        one user is not in every model's canary), else a random draw."""
        if self.policy != "canary":
            return False
        if sticky_value is None:
            return random.random() < self.share  # noqa: S311 - traffic splitting, not security
        digest = hashlib.blake2b(sticky_value, digest_size=8, salt=model.encode()[-16:]).digest()
        return int.from_bytes(digest, "big") / 2**64 < self.share
