"""Bearer-token authentication, off unless tokens are configured.

Tokens come from a file (one a line, so a Kubernetes Secret can be mounted as is) and from
$SIGSERVE_AUTH_TOKENS (comma-separated). The file is re-read when it changes, so a rotated
Secret takes effect without a restart; the check is a `stat` at most once a second, not a read
per request. Only SHA-256 digests of the tokens are kept, and a presented token is compared
with every one of them in constant time: neither its value nor its length shows in the timing.
Liveness and readiness probes stay open. Tokens never reach a log line or a response.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from pathlib import Path

from starlette.types import Scope, Send

from sigserve.errors import SigserveError
from sigserve.server.http_errors import codec_for_path, render_error

logger = logging.getLogger("sigserve.auth")

TOKENS_ENV = "SIGSERVE_AUTH_TOKENS"
PROBE_PATHS = frozenset({"/ping", "/health", "/v2/health/live", "/v2/health/ready"})
METRICS_PATH = "/metrics"
FILE_CHECK_SECONDS = 1.0
CHALLENGE = b'Bearer realm="sigserve"'
INVALID_TOKEN_CHALLENGE = b'Bearer realm="sigserve", error="invalid_token"'


class Unauthenticated(SigserveError):
    """No valid bearer token: 401 with a `WWW-Authenticate` challenge.

    `rejection_reason` is the metrics label: `unauthenticated` (no bearer token sent) or `invalid_token`.
    """

    status_code = 401
    error_code = "UNAUTHENTICATED"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.rejection_reason = reason

    @property
    def challenge(self) -> bytes:
        return INVALID_TOKEN_CHALLENGE if self.rejection_reason == "invalid_token" else CHALLENGE


class AuthConfigError(SigserveError):
    """Authentication was asked for but cannot work: a start-up failure, said in one line."""


_MISSING = Unauthenticated(
    "Authentication required: send the header 'Authorization: Bearer <token>'", "unauthenticated"
)
_INVALID = Unauthenticated("The bearer token is not valid", "invalid_token")


def parse_token_lines(text: str, source: str) -> list[str]:
    """One token a line; blank lines and lines starting with `#` are skipped."""
    tokens = []
    for number, line in enumerate(text.splitlines(), 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        _check_token(token, f"line {number} of {source}")
        tokens.append(token)
    return tokens


def parse_token_list(value: str, source: str) -> list[str]:
    """Comma-separated tokens, blanks around them ignored."""
    tokens = [token.strip() for token in value.split(",") if token.strip()]
    for number, token in enumerate(tokens, 1):
        _check_token(token, f"token {number} of {source}")
    return tokens


def _check_token(token: str, where: str) -> None:
    """A token a client can send in a header: visible ASCII, no spaces (never echoed back)."""
    if not all(33 <= ord(c) <= 126 for c in token):
        raise AuthConfigError(f"{where} is not a usable bearer token: use visible ASCII characters without spaces")


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class BearerAuth:
    """Decides, per request, whether it may go on; answers 401 when not."""

    def __init__(self, token_file: str | None, env_tokens: list[str], metrics_without_auth: bool = False) -> None:
        self.token_file = Path(token_file) if token_file else None
        self.open_paths = PROBE_PATHS | {METRICS_PATH} if metrics_without_auth else PROBE_PATHS
        self._env_digests = tuple(_digest(t.encode()) for t in env_tokens)
        self._file_digests: tuple[bytes, ...] = ()
        self._file_signature: tuple[int, ...] | None = None  # device, inode, size, mtime
        self._next_check = 0.0
        self._last_problem: str | None = None
        self.file_token_count = 0
        if self.token_file is not None:
            self._load_file(strict=True)
        self._digests = self._env_digests + self._file_digests
        if not self._digests:
            where = str(self.token_file) if self.token_file else f"${TOKENS_ENV}"
            raise AuthConfigError(f"authentication is on but {where} holds no token: add at least one")

    @classmethod
    def from_config(cls, token_file: str | None, metrics_without_auth: bool = False) -> BearerAuth | None:
        """None when neither a token file nor $SIGSERVE_AUTH_TOKENS asks for authentication."""
        env_value = os.environ.get(TOKENS_ENV, "")
        if not token_file and not env_value.strip():
            return None
        return cls(token_file or None, parse_token_list(env_value, f"${TOKENS_ENV}"), metrics_without_auth)

    def describe(self) -> str:
        """For the start-up log line: where tokens come from and what is open, never the tokens."""
        sources = []
        if self.token_file is not None:
            sources.append(f"{self.file_token_count} from {self.token_file} (re-read when it changes)")
        if self._env_digests:
            sources.append(f"{len(self._env_digests)} from ${TOKENS_ENV}")
        open_paths = sorted(self.open_paths)
        return f"bearer tokens required: {' and '.join(sources)}; open without a token: {', '.join(open_paths)}"

    def refusal(self, scope: Scope) -> Unauthenticated | None:
        """None when the request may go on: an open path, or a known token."""
        if scope["path"] in self.open_paths:
            return None
        presented = _bearer_token(scope)
        if presented is None:
            return _MISSING
        candidate = _digest(presented)
        accepted = False
        for digest in self._current_digests():  # every one, no early exit
            accepted |= hmac.compare_digest(candidate, digest)
        return None if accepted else _INVALID

    async def answer(self, scope: Scope, send: Send, error: Unauthenticated,
                     extra: list[tuple[bytes, bytes]]) -> tuple[int, int]:
        """401 in the shape of the path's protocol, with the challenge. Of the usual response
        headers only the request ID: the model's name and version are for authenticated clients."""
        path = scope["path"]
        status, payload = render_error(error, codec_for_path(path))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
            (b"www-authenticate", error.challenge),
            *(header for header in extra if header[0] in (b"x-request-id", b"connection")),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        return status, len(payload)

    def _current_digests(self) -> tuple[bytes, ...]:
        if self.token_file is not None:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + FILE_CHECK_SECONDS
                self._load_file(strict=False)
                self._digests = self._env_digests + self._file_digests
        return self._digests

    def _load_file(self, strict: bool) -> None:
        """Read the token file if it changed. At start-up a problem stops the server; later it is
        logged once and the tokens read last stay in force (a file being rewritten, a Secret
        update in progress). A readable file with no token is taken at its word: it admits none."""
        assert self.token_file is not None
        try:
            stat = os.stat(self.token_file)
            signature = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if signature == self._file_signature:
                return
            tokens = parse_token_lines(self.token_file.read_text(encoding="utf-8"), str(self.token_file))
        except (OSError, UnicodeDecodeError, AuthConfigError) as exc:
            problem = _describe(exc, self.token_file)
            if strict:
                raise AuthConfigError(problem) from None
            if problem != self._last_problem:
                logger.warning("%s; the tokens read before stay in force", problem)
                self._last_problem = problem
            return
        first = self._file_signature is None
        self._file_signature, self._last_problem = signature, None
        self._file_digests = tuple(_digest(t.encode()) for t in tokens)
        self.file_token_count = len(tokens)
        if not first:
            if tokens:
                logger.info("auth token file %s changed: %d token(s) now accepted from it",
                            self.token_file, len(tokens))
            else:
                logger.warning("auth token file %s changed and holds no token: it admits no one now", self.token_file)


def _describe(exc: Exception, path: Path) -> str:
    if isinstance(exc, AuthConfigError):
        return exc.message
    if isinstance(exc, UnicodeDecodeError):
        return f"the auth token file {path} is not UTF-8 text"
    assert isinstance(exc, OSError)
    return f"cannot read the auth token file {path}: {exc.strerror or exc}"


def _bearer_token(scope: Scope) -> bytes | None:
    """The credentials of an `Authorization: Bearer …` header (scheme case-insensitive)."""
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() != b"bearer":
                return None
            return credentials.strip(b" \t")
    return None
