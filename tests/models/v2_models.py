"""A model shaped like the Open Inference Protocol's documented example: two inputs, one FP32
[3, 2] output named `output0` (plus another output, so the `outputs` filter has work to do)."""

import mlflow.pyfunc
import numpy as np


class SpecExample(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return {
            "output0": np.array([[1.0, 1.1], [2.0, 2.1], [3.0, 3.1]], dtype=np.float32),
            "input0_sum": np.asarray(model_input["input0"]).sum(axis=1).astype(np.int64),
        }
