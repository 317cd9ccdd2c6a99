"""What one request may decode to, whatever its body size: rows, columns read, and decoded bytes.

The body limit bounds what a client sends, not what it costs: a 200 KB Parquet body can hold
25 M rows, a 1 KB one a dictionary string repeated into gigabytes. Each decoder checks these
limits before the work they bound (from Parquet metadata, as CSV streams, before JSON is
parsed), so a refusal costs little.
"""

from __future__ import annotations

from dataclasses import dataclass

from sigserve.errors import RequestLimitExceeded

MiB = 1024 * 1024
# The densest CSV (`1,` or empty cells) decodes to 4 to 8 times its text; Parquet bombs expand
# a thousandfold. So by default a request may decode to 8 times the body limit.
DECODED_PER_BODY_BYTE = 8
MIN_DEFAULT_DECODED_BYTES = 64 * MiB  # so a small body limit does not refuse small requests


def default_max_decoded_bytes(max_body_bytes: int) -> int:
    return max(DECODED_PER_BODY_BYTE * max_body_bytes, MIN_DEFAULT_DECODED_BYTES)


@dataclass(frozen=True)
class DecodeLimits:
    """`None` turns a limit off (`sigserve predict` scores a local file without them)."""

    max_rows: int | None = 1_000_000
    max_columns: int | None = 10_000  # decoded; pyarrow keeps about 10 KB for each
    max_decoded_bytes: int | None = DECODED_PER_BODY_BYTE * 64 * MiB  # for the default body limit

    def check_rows(self, rows: int, what: str, *, more: bool = False) -> None:
        """`more`: `rows` were counted so far and the body holds more (a CSV being streamed)."""
        if self.max_rows is not None and rows > self.max_rows:
            count = f"more than {self.max_rows}" if more else str(rows)
            raise RequestLimitExceeded(
                f"{what} has {count} rows, over this server's limit of {self.max_rows} rows per request",
                reason="too_many_rows",
            )

    def check_columns(self, columns: int, what: str) -> None:
        """Columns to decode: all of them for a model whose signature does not name its inputs."""
        if self.max_columns is not None and columns > self.max_columns:
            raise RequestLimitExceeded(
                f"{what} has {columns} columns to decode, over this server's limit of {self.max_columns} "
                "columns per request (a model whose signature names its inputs decodes only those)",
                reason="too_many_columns",
            )

    def check_decoded(self, nbytes: int, what: str, *, estimated: bool = False) -> None:
        if self.max_decoded_bytes is not None and nbytes > self.max_decoded_bytes:
            size = "would decode to about" if estimated else "decodes to at least"
            raise RequestLimitExceeded(
                f"{what} {size} {_mib(nbytes)}, over this server's limit of {_mib(self.max_decoded_bytes)} "
                f"({self.max_decoded_bytes} bytes) of decoded data per request",
                reason="decoded_too_large",
            )


def _mib(nbytes: int) -> str:
    return f"{nbytes / MiB:.1f} MiB"


DEFAULT_LIMITS = DecodeLimits()
UNLIMITED = DecodeLimits(max_rows=None, max_columns=None, max_decoded_bytes=None)
