"""A process that decoded a Parquet body exits cleanly.

pyarrow's Parquet reader may release its input on an Arrow pool thread after the read has
returned. When that input wraps Python memory and the interpreter is already finalizing, the
release aborts the process (apache/arrow#34314): `sigserve predict -t parquet` exited -6 after
writing its output in about one run in eight on two busy cores. One run proves nothing, so
this runs the decode-then-exit sequence many times, four at once to keep the cores busy.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from helpers import frame_to_parquet

RUNS = 60
CONCURRENT = 4
DECODE_THEN_EXIT = """
import sys
from sigserve.codecs.mlflow.parquet import ParquetDecoder
decoded = ParquetDecoder().decode(sys.stdin.buffer.read(), None, {})
print(decoded.data.n_rows)
"""


def test_decoding_parquet_never_aborts_the_exiting_process() -> None:
    body = frame_to_parquet(pd.DataFrame({"a": [1.5, 2.5, 3.5], "b": ["x", "y", "z"]}))

    def run(_: int) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-c", DECODE_THEN_EXIT], input=body,
                              capture_output=True, timeout=120)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(pool.map(run, range(RUNS)))
    failures = [(r.returncode, r.stderr.decode()[-300:]) for r in results if r.returncode != 0]
    assert not failures, f"{len(failures)} of {RUNS} runs failed: {failures[:3]}"
    assert all(r.stdout.strip() == b"3" for r in results)
