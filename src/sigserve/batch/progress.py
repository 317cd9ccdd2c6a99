"""A one-line progress report on a terminal: rows, rows/s and the time left."""

from __future__ import annotations

import time
from typing import TextIO

REFRESH_SECONDS = 0.2


class Progress:
    """`total_rows` when the input says (Parquet), else the share of its bytes read, for the ETA."""

    def __init__(self, stream: TextIO, total_rows: int | None, total_bytes: int | None) -> None:
        self.stream, self.total_rows, self.total_bytes = stream, total_rows, total_bytes
        self.started = self.shown = time.monotonic()
        self.rows = 0

    def update(self, rows: int, bytes_read: int) -> None:
        self.rows = rows
        now = time.monotonic()
        if now - self.shown >= REFRESH_SECONDS:
            self.shown = now
            self._show(now, bytes_read)

    def finish(self, bytes_read: int) -> None:
        self._show(time.monotonic(), bytes_read, done=True)
        self.stream.write("\n")
        self.stream.flush()

    def _show(self, now: float, bytes_read: int, done: bool = False) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.rows / elapsed
        line = f"{self.rows:,} rows · {rate:,.0f} rows/s"
        share = self._share(bytes_read)
        if share is not None and not done:
            line = f"{share:6.1%} {_bar(share)} {line}"
            if 0 < share < 1:
                line += f" · ETA {_clock(elapsed * (1 - share) / share)}"
        elif done:
            line += f" · {_clock(elapsed)}"
        self.stream.write(f"\r\x1b[2K{line}")
        self.stream.flush()

    def _share(self, bytes_read: int) -> float | None:
        if self.total_rows:
            return min(self.rows / self.total_rows, 1.0)
        if self.total_bytes and bytes_read:
            return min(bytes_read / self.total_bytes, 1.0)
        return None


def _bar(share: float, width: int = 24) -> str:
    filled = int(share * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
