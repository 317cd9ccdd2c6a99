"""Models for the gRPC tests."""

import os

import mlflow.pyfunc


class Pid(mlflow.pyfunc.PythonModel):
    """Which worker process scored the request."""

    def predict(self, context, model_input, params=None):
        return {"pid": [os.getpid()] * len(model_input)}
