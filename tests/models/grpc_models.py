"""Models for the gRPC tests."""

import os

import mlflow.pyfunc


class Pid(mlflow.pyfunc.PythonModel):
    """Which worker process scored the request."""

    def predict(self, context, model_input, params=None):
        return {"pid": [os.getpid()] * len(model_input)}


class NegativeRefused(mlflow.pyfunc.PythonModel):
    """Fails on a negative x: saved with one as its example, it is served only with
    --allow-failing-example, and never ready."""

    def predict(self, context, model_input, params=None):
        if (model_input["x"] < 0).any():
            raise ValueError("x must not be negative")
        return {"x": list(model_input["x"])}
