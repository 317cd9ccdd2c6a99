"""TLS for the listener, with the certificate re-read when its files change.

uvicorn builds one SSLContext per process and never reloads it. Here that context checks the
certificate and key files at each TLS handshake (two `stat` calls, far cheaper than the
handshake) and, when either changed, loads them into a fresh context that the handshake, and
every later one, switches to. A pair that does not load (a half-written file, a key that does
not match) is logged and skipped; the previous certificate stays in use until a good pair
appears. Connections already open keep the certificate they were made with.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sigserve.errors import SigserveError

logger = logging.getLogger("sigserve.tls")

CERT_ENV = "SIGSERVE_TLS_CERT"
KEY_ENV = "SIGSERVE_TLS_KEY"


class TlsConfigError(SigserveError):
    """TLS was asked for but cannot work: a start-up failure, said in one line."""


@dataclass(frozen=True)
class TlsFiles:
    certfile: str  # PEM: the certificate, then any intermediates
    keyfile: str  # PEM, unencrypted

    @classmethod
    def from_flags(cls, certfile: str | None, keyfile: str | None) -> TlsFiles | None:
        """None when TLS is off; both files must be given and must load together."""
        if not certfile and not keyfile:
            return None
        if not certfile or not keyfile:
            raise TlsConfigError("TLS needs both --tls-cert and --tls-key ($SIGSERVE_TLS_CERT and $SIGSERVE_TLS_KEY)")
        files = cls(os.path.abspath(certfile), os.path.abspath(keyfile))
        for path in (files.certfile, files.keyfile):
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise TlsConfigError(f"cannot read the TLS file {path}: {exc.strerror or exc}") from None
        try:
            server_context(files)
        except ssl.SSLError as exc:
            raise TlsConfigError(
                f"cannot use {files.certfile} and {files.keyfile} for TLS ({exc.reason or 'not readable PEM'}): "
                "they must be a PEM certificate and the unencrypted PEM private key that matches it"
            ) from None
        return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.certfile, files.keyfile, password=_no_password)
    return context


def _no_password() -> bytes:
    """An encrypted key then fails to load, instead of OpenSSL prompting on the terminal."""
    return b""


class ReloadingCertificate:
    """The listening context, and the newest context whose certificate loaded."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._signature = self._stat()
        self.listening = server_context(files)
        self.current = self.listening
        self._last_problem: str | None = None
        self.listening.sni_callback = self._on_client_hello

    def _stat(self) -> tuple[tuple[int, int, int, int], ...]:
        stats = (os.stat(self.files.certfile), os.stat(self.files.keyfile))
        return tuple((s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)

    def _on_client_hello(self, connection: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        """Called by OpenSSL for every ClientHello, with or without SNI."""
        try:
            self._reload_if_changed()
        except Exception:  # noqa: BLE001 - a failed check must not fail the handshake
            logger.exception("checking the TLS certificate files failed")
        if self.current is not context:
            connection.context = self.current

    def _reload_if_changed(self) -> None:
        try:
            signature = self._stat()
        except OSError as exc:
            self._warn_once(f"cannot read the TLS certificate files ({exc.strerror or exc})")
            return
        if signature == self._signature:
            return
        self._signature = signature  # tried once per change: a bad pair is not retried until it changes again
        try:
            self.current = server_context(self.files)
        except OSError as exc:  # ssl.SSLError included
            self._warn_once(f"the TLS certificate files changed but do not load "
                            f"({getattr(exc, 'reason', None) or exc.strerror or 'not readable PEM'})")
            return
        self._last_problem = None
        logger.info("TLS certificate reloaded from %s", self.files.certfile)

    def _warn_once(self, problem: str) -> None:
        if problem != self._last_problem:
            logger.warning("%s; the certificate loaded before stays in use", problem)
            self._last_problem = problem


def context_factory(config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's `ssl_context_factory`: a context that follows the files named in its config."""
    return ReloadingCertificate(TlsFiles(str(config.ssl_certfile), str(config.ssl_keyfile))).listening


def uvicorn_options(files: TlsFiles | None) -> dict[str, Any]:
    if files is None:
        return {}
    return {"ssl_certfile": files.certfile, "ssl_keyfile": files.keyfile, "ssl_context_factory": context_factory}


def gunicorn_options(files: TlsFiles | None) -> dict[str, Any]:
    """gunicorn checks the files in the master; each worker's uvicorn then builds the reloading
    context (gunicorn's uvicorn worker passes the files, not a factory, so a hook adds it)."""
    if files is None:
        return {}
    return {"certfile": files.certfile, "keyfile": files.keyfile, "post_worker_init": _use_reloading_context}


def _use_reloading_context(worker: Any) -> None:
    worker.config.ssl_context_factory = context_factory
