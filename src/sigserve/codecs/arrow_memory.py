"""Request bodies handed to pyarrow's readers as memory Arrow owns.

pyarrow's Parquet reader can drop its last reference to the input on one of Arrow's pool
threads after `read_table` has returned. For input backed by Python objects that release
needs the GIL; if the interpreter is shutting down by then, the pool thread is killed while
taking it and the process aborts ("terminate called without an active exception",
apache/arrow#34314). A copy in Arrow's memory is released without Python, for one memcpy.
The CSV readers get the same input, so no reader's threading needs checking case by case.
"""

from __future__ import annotations

import pyarrow as pa


def arrow_copy(body: bytes) -> pa.Buffer:
    """Any pyarrow reader takes the returned buffer in place of a file."""
    buffer = pa.allocate_buffer(len(body))
    memoryview(buffer).cast("B")[:] = body
    return buffer
