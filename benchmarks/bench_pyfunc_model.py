"""The PythonModel that `bench_vs_mlflow.py --model pythonmodel` serves.

It lives in its own module, saved with the model through `code_paths`, so that every server
process (mlflow, sigserve, the floor) imports it by name: a class defined in the benchmark's
`__main__` would not be importable there.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np


class WeightedSum(mlflow.pyfunc.PythonModel):
    """A weighted sum of the input columns, with the weights read from an `.npy` artifact.

    The sum is taken column by column, in column order, so the result does not depend on the
    frame's memory layout (a BLAS matrix-vector product could round differently for a C- and an
    F-ordered array, and the servers build their frames differently).
    """

    def load_context(self, context: Any) -> None:
        self.weights = np.load(context.artifacts["weights"])

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        total = np.zeros(len(model_input), dtype=np.float64)
        for weight, column in zip(self.weights, model_input.columns, strict=True):
            total += weight * model_input[column].to_numpy(dtype=np.float64)
        return total
