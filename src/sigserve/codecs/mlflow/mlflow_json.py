"""The two JSON bodies MLflow's scoring server reads by its own rules, before the usual fields.

- **Unified LLM payloads:** a top-level `messages`, `prompt` or `input` key marks a chat,
  completions or embeddings request, for any model. Keys named in the params schema are params,
  the rest is the model's data; the answer is not wrapped in `predictions`.
- **Type-hint models** (`is_signature_from_type_hint` in MLmodel) take only `{"inputs": …}`,
  whose value goes to the model as is: its type hints validate and convert it.
"""

from __future__ import annotations

from typing import Any

from sigserve.codecs.base import Decoded, Raw
from sigserve.codecs.mlflow.json_body import kind_of
from sigserve.errors import InvalidParameter

LLM_KEYS = ("messages", "prompt", "input")
UNIFIED_LLM_FORMAT = "unified_llm"


def decode_mlflow_json(document: Any, *, type_hints: bool, param_names: frozenset[str]) -> Decoded | None:
    """The decoded body when one of MLflow's own rules applies, else None (the usual fields)."""
    if isinstance(document, dict) and any(key in document for key in LLM_KEYS):
        data = {key: value for key, value in document.items() if key not in param_names}
        params = {key: value for key, value in document.items() if key in param_names}
        return Decoded(Raw(data), params, UNIFIED_LLM_FORMAT, unified_llm=True)
    if not type_hints:
        return None
    if not isinstance(document, dict) or "inputs" not in document:
        found = list(document) if isinstance(document, dict) else kind_of(document)
        raise InvalidParameter(
            "Request payload must be a dictionary with 'inputs' key when the model contains a valid "
            f"type hint. Found: {found}."
        )
    return Decoded(Raw(document["inputs"]), document.get("params"), "inputs")
