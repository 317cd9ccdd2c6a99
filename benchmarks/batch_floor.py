#!/usr/bin/env python
"""The floor of batch scoring: what any scorer of an MLflow model must at least do, and nothing else.

    python benchmarks/batch_floor.py MODEL_DIR ROWS.parquet

starts Python, imports the model's library, loads the model straight from its flavor's file (no
MLflow, no sigserve), reads the rows from Parquet (pyarrow, multithreaded) and calls the model's own
`predict` (or the pyfunc flavor's `predict_fn`) once on all of them; no signature, no output file.
`model_udf` is the same model alone in an iterator pandas UDF, for Spark; `bare_udf` and
`bare_arrow_udf` score nothing. A scorer cannot beat its
floor, so MLflow's time over the floor bounds the speed-up any drop-in can show.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Iterator, Tuple  # typing's: pandas_udf reads these hints

import yaml


def load_predict(model_dir: Path) -> Callable[[Any], Any]:
    flavors = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]
    predict_fn = flavors["python_function"].get("predict_fn", "predict")
    if "xgboost" in flavors:
        import importlib

        flavor = flavors["xgboost"]
        module, _, name = flavor["model_class"].rpartition(".")
        model = getattr(importlib.import_module(module), name)()
        model.load_model(str(model_dir / flavor["data"]))
        return getattr(model, predict_fn)
    flavor = flavors["sklearn"]
    path = model_dir / flavor["pickled_model"]
    if flavor.get("serialization_format") == "skops":
        import skops.io

        model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    else:
        with path.open("rb") as file:
            model = pickle.load(file)
    return getattr(model, predict_fn)


def model_udf(model_dir: Path, columns: list[str]):
    """The model in an iterator pandas UDF returning doubles: loaded once per Python worker."""
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    def predict(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        model_predict = load_predict(model_dir)
        for batch in batches:
            result = model_predict(pd.DataFrame(dict(zip(columns, batch))))
            yield pd.Series(result[:, -1] if getattr(result, "ndim", 1) == 2 else result, dtype="float64")

    predict.__annotations__ = {"batches": Iterator[Tuple[(pd.Series,) * len(columns)]],
                               "return": Iterator[pd.Series]}
    return pandas_udf(predict, "double")


def bare_udf(columns: list[str]):
    """No model at all: the cost of moving the columns to Python and a column back."""
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    def zeros(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        for batch in batches:
            yield pd.Series(0.0, index=range(len(batch[0])))

    zeros.__annotations__ = {"batches": Iterator[Tuple[(pd.Series,) * len(columns)]], "return": Iterator[pd.Series]}
    return pandas_udf(zeros, "double")


def bare_arrow_udf(columns: list[str]):
    """No model, on an Arrow UDF (pyspark 4.1+): no pandas either way."""
    import numpy as np
    import pyarrow as pa
    from pyspark.sql.functions import arrow_udf

    def zeros(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
        for batch in batches:
            yield pa.array(np.zeros(len(batch[0])))

    zeros.__annotations__ = {"batches": Iterator[Tuple[(pa.Array,) * len(columns)]], "return": Iterator[pa.Array]}
    return arrow_udf(zeros, "double")


def main(model_dir: str, parquet_path: str) -> int:
    import pyarrow.parquet as pq

    model_predict = load_predict(Path(model_dir))
    frame = pq.read_table(parquet_path).to_pandas()
    predictions = model_predict(frame)
    print(len(predictions))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
