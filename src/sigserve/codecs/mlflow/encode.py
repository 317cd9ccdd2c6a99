"""MLflow's answer: predictions to `{"predictions": ...}` JSON bytes, shaped as MLflow shapes them."""

from __future__ import annotations

from typing import Any

import orjson

from sigserve.codecs.json_encode import OPTIONS, default, jsonable


def encode_predictions(predictions: Any) -> bytes:
    return orjson.dumps({"predictions": jsonable(predictions)}, default=default, option=OPTIONS)


def encode_unwrapped(predictions: Any) -> bytes:
    """A unified LLM payload's answer: the predictions themselves, as MLflow answers it."""
    return orjson.dumps(jsonable(predictions), default=default, option=OPTIONS)
