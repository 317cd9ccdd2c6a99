"""Batch scoring on Ray (`pip install 'sigserve[ray]'`): `Predictor` for `Dataset.map_batches`,
`predict` to map it over a dataset in one call, and `sigserve predict --engine ray`."""

from sigserve.ray.engine import predict_on_ray
from sigserve.ray.predictor import Predictor, predict
from sigserve.ray.shipping import ShippedModel, ship_directory, ship_model
from sigserve.ray.skipped import SkippedRows

__all__ = ["Predictor", "ShippedModel", "SkippedRows", "predict", "predict_on_ray", "ship_directory", "ship_model"]
