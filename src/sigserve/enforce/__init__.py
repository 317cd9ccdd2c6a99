"""Enforce stage: decoded data + signature in, the model's input out (or a SchemaError)."""

from sigserve.enforce.inputs import enforce_input
from sigserve.enforce.params import enforce_params

__all__ = ["enforce_input", "enforce_params"]
