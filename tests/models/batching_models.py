"""PythonModels for the micro-batching tests: row-wise ones, and ones batching must not merge."""

import time

import mlflow.pyfunc
import numpy as np


class FailsOnNegative(mlflow.pyfunc.PythonModel):
    """Row-wise, but any negative x fails the whole call: batching must fail only its owner."""

    def predict(self, context, model_input, params=None):
        x = model_input["x"].to_numpy()
        if (x < 0).any():
            raise ValueError(f"negative x: {x[x < 0].tolist()}")
        return x * 2


class Summary(mlflow.pyfunc.PythonModel):
    """One value for the whole input: its output cannot be split back per request."""

    def predict(self, context, model_input, params=None):
        return np.array([model_input["x"].mean()])


class FrameEcho(mlflow.pyfunc.PythonModel):
    """The input back as a frame, with the dtypes it arrived in, so merging must keep them."""

    def predict(self, context, model_input, params=None):
        dtypes = ";".join(f"{c}:{t}" for c, t in model_input.dtypes.items())
        return model_input.assign(dtypes=dtypes)


class DictOut(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        x = model_input["x"].to_numpy()
        return {"double": x * 2, "label": [f"x={v:g}" for v in x]}


class SlowDouble(mlflow.pyfunc.PythonModel):
    """Takes a while per call, so callers can be cancelled while their batch runs."""

    def predict(self, context, model_input, params=None):
        time.sleep(0.3)
        return model_input["x"].to_numpy() * 2


class RowsPerCall(mlflow.pyfunc.PythonModel):
    """Row-wise x * 2, with the number of rows in the predict call beside each row: every answer
    shows whether its request shared a call with others."""

    def predict(self, context, model_input, params=None):
        x = model_input["x"].to_numpy()
        return {"double": x * 2, "rows_in_call": np.full(len(x), len(x))}
