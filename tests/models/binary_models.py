"""Models for the KServe V2 binary tensor tests: they hand back what enforcement gave them."""

import mlflow.pyfunc


class Identity(mlflow.pyfunc.PythonModel):
    """Named tensors in, the same arrays out: one output per input, dtype and values as enforced."""

    def predict(self, context, model_input, params=None):
        return dict(model_input)


class Doubled(mlflow.pyfunc.PythonModel):
    """One unnamed tensor in, twice its values out, doubled in place (as a model may)."""

    def predict(self, context, model_input, params=None):
        model_input *= 2
        return model_input
