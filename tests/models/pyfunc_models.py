"""PythonModels used by the tests; pickled by MLflow with cloudpickle, so they live in a module."""

import numpy as np
import pandas as pd

import mlflow.pyfunc


def describe(model_input):
    """What the model was handed: enough for tests to see types, values and shapes."""
    if isinstance(model_input, pd.DataFrame):
        frame = model_input.astype(object).where(model_input.notna(), None)
        values = [[_plain(v) for v in row] for row in frame.values.tolist()]
        return {
            "kind": "frame",
            "columns": [str(c) for c in model_input.columns],
            "dtypes": {str(c): str(t) for c, t in model_input.dtypes.items()},
            "values": values,
        }
    if isinstance(model_input, dict):
        return {"kind": "dict", "items": {k: describe(v) for k, v in model_input.items()}}
    if isinstance(model_input, np.ndarray):
        return {"kind": "array", "dtype": str(model_input.dtype), "shape": list(model_input.shape),
                "values": _plain(model_input.tolist())}
    return {"kind": type(model_input).__name__}


def _plain(value):
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


class Echo(mlflow.pyfunc.PythonModel):
    """Returns a description of its input, so enforcement results can be compared exactly."""

    def predict(self, context, model_input, params=None):
        return {"input": describe(model_input), "params": _plain(params)}


class Slow(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        import os
        import time

        marker = os.environ.get("SIGSERVE_TEST_STARTED_MARKER")
        if marker:  # one line per prediction started
            with open(marker, "a") as started:
                started.write("started\n")
        time.sleep(float(model_input.iloc[0, 0]))
        return np.zeros(len(model_input))


class Fails(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        raise ValueError("this model always fails")


class SeriesOut(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.Series(model_input.iloc[:, 0].to_numpy() * 2)


class Float32Out(mlflow.pyfunc.PythonModel):
    """float32 predictions: MLflow writes each as the exact double of the float32 value."""

    def predict(self, context, model_input, params=None):
        return model_input.to_numpy(np.float32)[:, 0] / np.float32(3)
