#!/usr/bin/env python
"""The floor: the least a Python server can do to score an MLflow request, for `bench_vs_mlflow.py`.

A bare Starlette app run by uvicorn (one worker, access log off). `POST /invocations`:

* JSON is parsed with orjson. A `dataframe_split` becomes `pd.DataFrame(data, columns=columns)`, a
  `dataframe_records` `pd.DataFrame(records)`, and a `text/csv` body `pd.read_csv(body)` (pandas'
  own type inference, no dtypes given).
  There are no checks against the signature and no type conversion of any kind.
* The model's pyfunc predict function is called on that frame, on the event loop.
* `{"predictions": ...}` is written by orjson, with numpy arrays serialized natively.

The model is what MLflow's pyfunc flavor would call: for `mlflow.sklearn` the deserialized
estimator itself (its `predict_fn`); for `mlflow.xgboost` and `mlflow.lightgbm` MLflow's flavor
wrapper (`mlflow.pyfunc.load_model(path)._model_impl`), with the library's own thread count set to
1; for anything else (a PythonModel) the flavor wrapper's predict function, without MLflow's
signature enforcement. Native thread pools get one thread, as sigserve gives them by default:
OMP_NUM_THREADS and the BLAS variables are set before anything is imported, and
`threadpool_limits(1)` is applied once the model has been loaded and has predicted once.

A prediction that is not an array (a Series, a DataFrame, a list) is converted the plain way
(`to_numpy()`, `to_dict("records")`); anything else is handed to orjson as is.

    python benchmarks/floor_server.py -m MODEL_DIR -p 5001
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before numpy or any OpenMP library is loaded

import argparse  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402
import pandas as pd  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def load_predict(model_dir: str) -> tuple[Callable[[Any], Any], str]:
    """The model's pyfunc predict function, and a one-line description of what it is."""
    import mlflow.pyfunc

    pyfunc_model = mlflow.pyfunc.load_model(model_dir)
    impl = pyfunc_model._model_impl
    conf = pyfunc_model.metadata.flavors["python_function"]
    loader = conf["loader_module"]
    predict_fn = conf.get("predict_fn") or "predict"
    if loader == "mlflow.sklearn":
        estimator = impl.get_raw_model()
        return getattr(estimator, predict_fn), f"{type(estimator).__name__}.{predict_fn} (raw estimator)"
    if loader == "mlflow.xgboost":
        import xgboost as xgb

        raw = impl.get_raw_model()
        if isinstance(raw, xgb.Booster):
            raw.set_param({"nthread": 1})
        else:
            raw.set_params(n_jobs=1)
            raw.get_booster().set_param({"nthread": 1})
    elif loader == "mlflow.lightgbm":
        raw = impl.get_raw_model()
        if hasattr(raw, "set_params") and hasattr(raw, "n_jobs"):
            raw.set_params(n_jobs=1)  # LightGBM's scikit-learn API predicts with n_jobs threads
        # a Booster predicts with OpenMP's default: OMP_NUM_THREADS, set to 1 above
    return getattr(impl, predict_fn), f"{type(impl).__name__}.{predict_fn} via {loader}"


def frame_from(content_type: str, body: bytes) -> pd.DataFrame:
    if content_type.startswith("text/csv"):
        return pd.read_csv(io.BytesIO(body))
    doc = orjson.loads(body)
    if "dataframe_split" in doc:
        split = doc["dataframe_split"]
        return pd.DataFrame(split["data"], columns=split["columns"])
    return pd.DataFrame(doc["dataframe_records"])


def jsonable(predictions: Any) -> Any:
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series):
        return predictions.to_numpy()
    return predictions


def build_app(predict: Callable[[Any], Any]) -> Starlette:
    async def ping(request: Request) -> Response:
        return Response(b"\n", media_type="application/json")

    async def invocations(request: Request) -> Response:
        frame = frame_from(request.headers.get("content-type", ""), await request.body())
        body = orjson.dumps({"predictions": jsonable(predict(frame))}, option=JSON_OPTIONS)
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/ping", ping, methods=["GET"]),
                             Route("/invocations", invocations, methods=["POST"])])


def warm_up(predict: Callable[[Any], Any], model_dir: str) -> None:
    """Score the model's serving input example once, as sigserve does at start-up."""
    example = Path(model_dir) / "serving_input_example.json"
    if example.is_file():
        orjson.dumps({"predictions": jsonable(predict(frame_from("application/json", example.read_bytes())))},
                     option=JSON_OPTIONS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True, help="a local MLflow model directory")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5001)
    parser.add_argument("--gc-freeze", action=argparse.BooleanOptionalAction, default=True,
                        help="move the start-up heap (MLflow, the model) out of the garbage collector's "
                             "reach once loaded, as sigserve does (default on)")
    args = parser.parse_args()

    import uvicorn
    from threadpoolctl import threadpool_limits

    predict, what = load_predict(args.model)
    warm_up(predict, args.model)
    threadpool_limits(1)  # every native pool loaded by now, the model's included
    if args.gc_freeze:
        gc.collect()
        gc.freeze()  # otherwise every full collection walks all of MLflow's and the model's objects
    print(json.dumps({"floor": what, "model": args.model}), flush=True)
    uvicorn.run(build_app(predict), host=args.host, port=args.port, workers=1, access_log=False,
                proxy_headers=False, log_level="warning")  # as `sigserve serve -w 1` runs uvicorn


if __name__ == "__main__":
    main()
