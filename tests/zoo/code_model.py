"""A model from code: MLflow runs this file at load time."""

import mlflow
from mlflow.pyfunc import PythonModel


class Doubler(PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["value"].astype("float64") * 2


mlflow.models.set_model(Doubler())
