"""A model that loads and predicts but whose predictions are not JSON: a broken new version
that only its warm-up can catch."""

import mlflow.pyfunc


class Unencodable(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [object() for _ in range(len(model_input))]
