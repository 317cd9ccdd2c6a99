"""A multinomial logistic regression over the iris features, in plain numpy."""

import json

import numpy as np
import pandas as pd


class IrisModel:
    def __init__(self, weights: dict) -> None:
        self.features = weights["features"]
        self.classes = np.array(weights["classes"], dtype=object)
        self.coef = np.asarray(weights["coef"], dtype=np.float64)
        self.intercept = np.asarray(weights["intercept"], dtype=np.float64)

    def predict(self, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        logits = model_input[self.features].to_numpy(np.float64) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        proba /= proba.sum(axis=1, keepdims=True)
        best = proba.argmax(axis=1)
        return pd.DataFrame({"species": self.classes[best], "probability": proba.max(axis=1).round(4)})


def _load_pyfunc(path: str) -> IrisModel:
    with open(path) as handle:
        return IrisModel(json.load(handle))
