"""Secrets and this machine's paths out of everything sigserve shows: URIs, error messages, log lines.

One place decides what a secret looks like, so /metadata, `sigserve info`, every log line and
every load error agree: the password (or a lone user name, which is often a token) in a URI's
userinfo, query parameters that carry credentials (`token=`, `sig=`, `X-Amz-Signature=`, …),
`Authorization` / `Bearer` values, and the literal values of the secrets sigserve was given
(`MLFLOW_TRACKING_TOKEN` and `MLFLOW_TRACKING_PASSWORD`, added with `add_secret` when the
sources' settings are read, and any other added so). Only what is shown is masked; the values
used to talk to the registry are left alone.
"""

from __future__ import annotations

import re

MASK = "***"
_MIN_LITERAL = 6  # shorter values would mask ordinary words; the patterns still catch them in URIs

# A query parameter is secret when its name is one of these or contains one of the fragments.
_SECRET_KEYS = frozenset({"sig", "signature", "key", "code", "sas", "se_token", "auth", "pwd", "pass"})
_SECRET_FRAGMENTS = ("token", "secret", "passw", "signature", "credential", "apikey", "api_key",
                     "api-key", "authorization", "session")

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#\"'<>\\]+)@")
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<key>[A-Za-z0-9_.\-]+)=(?P<value>[^&;#\s\"'<>\\]*)")
_AUTH_HEADER = re.compile(
    r"(?i)(?P<name>\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?)(?P<kind>(?:bearer|basic|token)\s+)?"
    r"(?P<value>[^\s\"',;}]+)"
)
_BEARER = re.compile(r"(?i)(?P<kind>\bbearer\s+)(?P<value>[A-Za-z0-9\-._~+/]{8,}=*)")
_added: list[str] = []  # longest first


def add_secret(value: str | None) -> None:
    """Mask this literal value wherever it appears: called where sigserve is given a secret
    (`TrackingSettings` holding MLflow's token and password, a password in a registry URI)."""
    global _added
    if value and len(value) >= _MIN_LITERAL and value not in _added:
        _added = sorted([*_added, value], key=len, reverse=True)


def _worth_scanning(text: str) -> bool:
    """Plain substring tests: a regex here would cost more than the log line itself."""
    if "://" in text or ("=" in text and ("?" in text or "&" in text or ";" in text)):
        return True
    lowered = text.lower()
    return "authoriz" in lowered or "bearer" in lowered or any(value in text for value in _added)


def secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_KEYS or any(fragment in lowered for fragment in _SECRET_FRAGMENTS)


def _mask_userinfo(userinfo: str) -> str:
    user, has_password, _ = userinfo.partition(":")
    return f"{user}:{MASK}" if has_password else MASK


def redact_uri(uri: str | None) -> str | None:
    """A URI fit to show: `http://user:***@host/…?token=***`; anything else unchanged."""
    return redact_text(uri) if uri else uri


def _masked_param(match: re.Match[str]) -> str:
    if not secret_key(match["key"]) or not match["value"]:
        return match[0]
    return f"{match['lead']}{match['key']}={MASK}"


def redact_text(text: str) -> str:
    """Free text (a log line, an error message) with every secret it embeds masked."""
    if not _worth_scanning(text):
        return text  # the common case, cheaply
    for value in _added:
        text = text.replace(value, MASK)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{_mask_userinfo(m['userinfo'])}@", text)
    text = _QUERY_PARAM.sub(_masked_param, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['name']}{m['kind'] or ''}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m['kind']}{MASK}", text)


_SEGMENT = r"[^\s/'\"`:,;()\[\]{}<>|]+"
# `/a/b…` not inside a word, number or URL (`1/2`, `http://h/x`), or right after `file://`.
_ABSOLUTE_PATH = re.compile(rf"(?:(?<=file://)|(?<![\w.~:/\\-]))(?:/{_SEGMENT})+/({_SEGMENT})")
PATH_PLACEHOLDER = "<path>"


def without_paths(text: str) -> str:
    """A message from code sigserve did not write (a model's exception, a traceback) as a client
    may see it: absolute paths of this machine become `<path>/basename`. The log keeps the original."""
    return _ABSOLUTE_PATH.sub(rf"{PATH_PLACEHOLDER}/\1", text)
