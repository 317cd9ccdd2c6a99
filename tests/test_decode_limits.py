"""Memory bounded by the work, not the body: real `sigserve serve` processes, bodies that are
small on the wire but huge once decoded, and the server's peak RSS read from /proc.

A 100 000-column CSV must cost what its signature's columns cost; a Parquet body of a few
hundred KB holding tens of millions of rows, or a dictionary page repeating one long string,
must be refused from its metadata; every format answers 413 past `--max-rows` in its
protocol's error shape, and still scores just under it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import SigserveServer, frame_to_csv, frame_to_parquet, metric_samples, save_pyfunc, total
from models import batching_models

CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
MAX_ROWS = 1000
MAX_DECODED = 4 * 1024 * 1024
MiB = 1024 * 1024
# Generous: the old decoders took about 1 GB for the wide CSV and the Parquet bomb, and more
# than the expanded 500 MB for the dictionary bomb; bounded decoding takes tens of MB.
PEAK_BOUND_MIB = 250


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One value for the whole input (the mean of x), so answers stay small at any row count."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec("double", "x"), ColSpec("string", "s", required=False)]))
    return save_pyfunc(tmp_path_factory.mktemp("decode-limits") / "summary", batching_models.Summary(), signature)


@pytest.fixture(scope="module")
def default_server(model: Path):
    """The production defaults: 1 000 000 rows, 512 MiB decoded."""
    with SigserveServer(model) as server:
        yield server


@pytest.fixture(scope="module")
def small_server(model: Path):
    with SigserveServer(model, "--max-rows", str(MAX_ROWS), "--max-decoded-bytes", str(MAX_DECODED)) as server:
        yield server


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def peak_growth_mib(server: SigserveServer, content_type: str, body: bytes) -> tuple[httpx.Response, float]:
    """The answer, and how far the server's RSS peaked above where it stood before the request
    (the kernel's high-water mark, reset first through clear_refs)."""
    assert server.process is not None
    pid = server.process.pid
    before = _status_kib(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    response = server.post(body, content_type, timeout=120)
    return response, (_status_kib(pid, "VmHWM") - before) / 1024


def assert_refused(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 413, response.text
    error = response.json()
    assert error["error_code"] == "REQUEST_LIMIT_EXCEEDED", error
    for word in words:
        assert word in error["message"], error


def assert_mean(response: httpx.Response, mean: float) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [pytest.approx(mean)]


def wide_csv(columns: int) -> bytes:
    """x, then `columns` other columns, one row: about 0.9 MB for 100 000."""
    names = ",".join(["x", *(f"c{i}" for i in range(columns))])
    return f"{names}\n2.5,{','.join('1' * columns)}\n".encode()


def parquet_bomb(rows: int, columns: int = 4) -> bytes:
    """Constant columns: run-length encoded, a few hundred KB for tens of millions of rows."""
    zeros = pa.array(np.zeros(rows))
    table = pa.table({"x": zeros, **{f"extra{i}": zeros for i in range(columns - 1)}})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=rows)
    return buffer.getvalue()


def dictionary_bomb(rows: int, value_bytes: int) -> bytes:
    """One long string in a dictionary page, repeated by every row: a few KB of Parquet."""
    strings = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["a" * value_bytes]))
    table = pa.table({"x": pa.array(np.ones(rows)), "s": strings})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", store_schema=False)
    return buffer.getvalue()


def test_a_wide_csv_costs_what_the_signature_columns_cost(default_server: SigserveServer) -> None:
    body = wide_csv(100_000)
    assert len(body) < MiB
    assert_mean(default_server.post(wide_csv(10), CSV), 2.5)  # warm-up: the CSV path's first use
    response, peak = peak_growth_mib(default_server, CSV, body)
    assert_mean(response, 2.5)
    assert peak < PEAK_BOUND_MIB, f"a {len(body)} byte CSV raised the server's RSS by {peak:.0f} MiB"


def test_a_parquet_bomb_is_refused_from_its_metadata(default_server: SigserveServer) -> None:
    body = parquet_bomb(25_000_000)
    assert len(body) < 600 * 1024
    assert_mean(default_server.post(frame_to_parquet(pd.DataFrame({"x": [1.0, 3.0]})), PARQUET), 2.0)  # warm-up
    response, peak = peak_growth_mib(default_server, PARQUET, body)
    assert_refused(response, "25000000 rows", "limit of 1000000 rows")
    assert peak < PEAK_BOUND_MIB, f"a {len(body)} byte Parquet body raised the server's RSS by {peak:.0f} MiB"


def test_a_parquet_dictionary_bomb_is_refused_before_it_expands(small_server: SigserveServer) -> None:
    """500 rows repeating a 1 MB string: within the row limit, 500 MB once decoded."""
    body = dictionary_bomb(MAX_ROWS // 2, MiB)
    assert len(body) < 64 * 1024
    assert_mean(small_server.post(frame_to_parquet(pd.DataFrame({"x": [1.0, 3.0], "s": ["a", "b"]})), PARQUET), 2.0)
    response, peak = peak_growth_mib(small_server, PARQUET, body)
    assert_refused(response, f"limit of {MAX_DECODED / MiB:.1f} MiB")
    assert peak < PEAK_BOUND_MIB, f"a {len(body)} byte Parquet body raised the server's RSS by {peak:.0f} MiB"


def test_a_footer_pyarrow_metadata_would_abort_on_is_a_400(default_server: SigserveServer) -> None:
    """Column x marked required while its size statistics say optional: pyarrow's metadata
    objects throw a C++ exception nothing catches (the process aborts), its reader raises.
    The footer walk must not take the server down (a guard for this decoder's own footer reading)."""
    body = frame_to_parquet(pd.DataFrame({"x": [1.5, 2.5, 3.5]}))
    optional_x = b"\x15\x0a\x25\x02\x18\x01x"  # Thrift: type DOUBLE, repetition OPTIONAL, name "x"
    assert body.count(optional_x) == 1
    response = default_server.post(body.replace(optional_x, b"\x15\x0a\x25\x00\x18\x01x"), PARQUET)
    assert response.status_code == 400, response.text
    assert "histogram" in response.json()["message"]
    assert httpx.get(default_server.url + "/ping", timeout=5).status_code == 200


def test_the_same_short_dictionary_body_still_scores(small_server: SigserveServer) -> None:
    assert_mean(small_server.post(dictionary_bomb(MAX_ROWS, 100), PARQUET), 1.0)


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(rows, dtype=np.float64)})


def _json_bodies(rows: int) -> dict[str, bytes]:
    frame = _frame(rows)
    return {
        "dataframe_split": json.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)}).encode(),
        "dataframe_records": json.dumps({"dataframe_records": frame.to_dict(orient="records")}).encode(),
        "instances": json.dumps({"instances": frame.to_dict(orient="records")}).encode(),
        "inputs": json.dumps({"inputs": {"x": frame["x"].tolist()}}).encode(),
    }


@pytest.mark.parametrize("field", ["dataframe_split", "dataframe_records", "instances", "inputs"])
def test_json_past_the_row_limit_is_refused_and_just_under_it_scores(small_server: SigserveServer, field: str) -> None:
    assert_refused(small_server.post(_json_bodies(MAX_ROWS + 1)[field]), f"{MAX_ROWS + 1} rows", f"limit of {MAX_ROWS} rows")
    assert_mean(small_server.post(_json_bodies(MAX_ROWS)[field]), (MAX_ROWS - 1) / 2)


def test_a_large_numeric_split_is_counted_before_it_is_read(small_server: SigserveServer) -> None:
    """Numbers only, past 128 KB: the fast path that reads them with pyarrow counts them first."""
    body = _json_bodies(50_000)["dataframe_split"]
    assert len(body) > 128 * 1024
    assert_refused(small_server.post(body), "50000 rows")


def test_csv_past_the_row_limit_is_refused_as_it_streams(small_server: SigserveServer) -> None:
    """Several pyarrow blocks (1 MB each) of rows: the first one is already past the limit."""
    body = frame_to_csv(_frame(800_000))
    assert len(body) > 4 * MiB
    assert_refused(small_server.post(body, CSV), f"more than {MAX_ROWS} rows")
    assert_mean(small_server.post(frame_to_csv(_frame(MAX_ROWS)), CSV), (MAX_ROWS - 1) / 2)


def test_parquet_past_the_row_limit_is_refused_and_just_under_it_scores(small_server: SigserveServer) -> None:
    assert_refused(small_server.post(frame_to_parquet(_frame(MAX_ROWS + 1)), PARQUET), f"{MAX_ROWS + 1} rows")
    assert_mean(small_server.post(frame_to_parquet(_frame(MAX_ROWS)), PARQUET), (MAX_ROWS - 1) / 2)


def _v2(rows: int) -> dict:
    return {"inputs": [{"name": "x", "shape": [rows], "datatype": "FP64", "data": list(range(rows))}]}


def test_v2_past_the_row_limit_is_refused_in_the_v2_error_shape(small_server: SigserveServer) -> None:
    url = f"{small_server.url}/v2/models/summary/infer"
    refused = httpx.post(url, json=_v2(MAX_ROWS + 1), timeout=30)
    assert refused.status_code == 413, refused.text
    assert set(refused.json()) == {"error"}
    assert f"shape [{MAX_ROWS + 1}]" in refused.json()["error"] and f"limit of {MAX_ROWS} rows" in refused.json()["error"]
    scored = httpx.post(url, json=_v2(MAX_ROWS), timeout=30)
    assert scored.status_code == 200, scored.text
    assert scored.json()["outputs"][0]["data"] == [pytest.approx((MAX_ROWS - 1) / 2)]


def test_csv_past_the_decoded_bytes_limit_is_refused(small_server: SigserveServer) -> None:
    """Few rows, long strings in a column the signature reads: counted block by block."""
    frame = pd.DataFrame({"x": np.ones(100), "s": ["y" * 60_000] * 100})
    assert_refused(small_server.post(frame_to_csv(frame), CSV), "decoded data")
    assert_mean(small_server.post(frame_to_csv(frame.head(10)), CSV), 1.0)


def test_json_whose_objects_would_pass_the_limit_is_refused_unparsed(small_server: SigserveServer) -> None:
    """Rows of strings (no numeric fast path): the objects would cost about 40 times the text."""
    body = json.dumps({"dataframe_records": [{"x": 1.0, "s": "ab"}] * 900 + [{"pad": [[]] * 40_000}]}).encode()
    assert_refused(small_server.post(body), "would decode to about")


def test_columns_not_in_the_signature_are_not_read_but_missing_ones_are_refused(small_server: SigserveServer) -> None:
    for content_type, encode in ((CSV, frame_to_csv), (PARQUET, frame_to_parquet)):
        response = small_server.post(encode(pd.DataFrame({"y": [1.0], "z": [2.0]})), content_type)
        assert response.status_code == 400, response.text
        assert response.json()["message"] == "Model is missing inputs ['x']. Note that there were extra inputs: ['y', 'z'].", content_type


def test_refusals_are_counted_by_limit(small_server: SigserveServer) -> None:
    before = metric_samples(small_server.url)
    assert small_server.post(frame_to_parquet(_frame(MAX_ROWS + 1)), PARQUET).status_code == 413
    assert small_server.post(dictionary_bomb(10, MiB), PARQUET).status_code == 413
    after = metric_samples(small_server.url)
    for reason in ("too_many_rows", "decoded_too_large"):
        counted = total(after, "sigserve_rejected_requests_total", reason=reason)
        assert counted - total(before, "sigserve_rejected_requests_total", reason=reason) == 1, reason


def test_without_a_named_signature_columns_past_the_limit_are_refused(tmp_path: Path) -> None:
    """No signature: every column is the model's, so their number is what is limited."""
    model = save_pyfunc(tmp_path / "summary_nosig", batching_models.Summary(), None)
    with SigserveServer(model, "--max-columns", "50") as server:
        assert_refused(server.post(wide_csv(50), CSV), "51 columns", "limit of 50 columns")
        assert_mean(server.post(wide_csv(49), CSV), 2.5)
        wide = pd.DataFrame({"x": [2.5], **{f"c{i}": [1.0] for i in range(50)}})
        assert_refused(server.post(frame_to_parquet(wide), PARQUET), "51 columns")
        assert_mean(server.post(frame_to_parquet(wide.iloc[:, :50]), PARQUET), 2.5)
        nested = pa.table({"x": [2.5], "fields": pa.array([{f"f{i}": 1.0 for i in range(60)}])})
        buffer = io.BytesIO()
        pq.write_table(nested, buffer)
        assert_refused(server.post(buffer.getvalue(), PARQUET), "61 columns")  # a struct's fields count
