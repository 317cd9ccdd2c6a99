"""Enforce stage: decoded data + signature in, the model's input out (or a SchemaError).

Imports the codecs' data types (`codecs.base`, `codecs.tables`), `model` and the base modules;
never `loaders`, `sources`, `scoring` or anything above.
"""

from sigserve.enforce.inputs import enforce_input
from sigserve.enforce.params import enforce_params

__all__ = ["enforce_input", "enforce_params"]
