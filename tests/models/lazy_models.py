"""PythonModels for `--max-loaded-models` tests: each adds its own offset, so an answer names the
model that gave it; one takes a while to load, so concurrent first requests overlap its load."""

import time

import mlflow.pyfunc


class AddOffset(mlflow.pyfunc.PythonModel):
    def __init__(self, offset: float, load_delay: float = 0.0) -> None:
        self.offset = offset
        self.load_delay = load_delay

    def load_context(self, context):
        time.sleep(self.load_delay)

    def predict(self, context, model_input, params=None):
        return (model_input["x"] + self.offset).to_numpy()
