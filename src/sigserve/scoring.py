"""The request path, end to end: decode → enforce → predict → encode."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from sigserve.codecs import Decoded, decode
from sigserve.encode import encode_predictions
from sigserve.enforce import enforce_input, enforce_params
from sigserve.errors import BadRequest, PredictionError, SigserveError
from sigserve.model.loader import LoadedModel

logger = logging.getLogger("sigserve.scoring")


class Scorer:
    """Holds a loaded model and its signature; `score` is safe to call from worker threads."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        signature = model.meta.signature
        self.input_schema = signature.inputs if signature else None
        self.param_specs = signature.params if signature else None

    def warm_up(self) -> None:
        """Score the model's own serving example once, so the first client does not pay for
        lazy initialisation; a failure is logged, as the example may predate the signature."""
        example = self.model.meta.serving_input_path
        if example is None or not example.is_file():
            return
        try:
            self.score("application/json", example.read_bytes())
        except SigserveError as exc:
            logger.warning("the model's serving input example does not score: %s", exc.message)
        else:
            logger.info("warmed up with %s", example.name)

    def score(self, content_type: str | None, body: bytes) -> bytes:
        decoded = self.decode(content_type, body)
        model_input, params = self.enforce(decoded)
        return encode_predictions(self.predict(model_input, params))

    def decode(self, content_type: str | None, body: bytes) -> Decoded:
        with _unexpected_as(BadRequest, "Could not read the request body"):
            return decode(content_type, body, self.input_schema)

    def enforce(self, decoded: Decoded) -> tuple[Any, dict[str, Any] | None]:
        with _unexpected_as(BadRequest, "The input does not match the model signature"):
            return enforce_input(decoded.data, self.input_schema), enforce_params(
                decoded.params, self.param_specs
            )

    def predict(self, model_input: Any, params: dict[str, Any] | None) -> Any:
        with _unexpected_as(PredictionError, "The model failed to predict on this input"):
            return self.model.predict(model_input, params)


@contextlib.contextmanager
def _unexpected_as(error_type: type[SigserveError], summary: str) -> Iterator[None]:
    """Re-raise anything that is not already a SigserveError as `error_type`, logged once."""
    try:
        yield
    except SigserveError:
        raise
    except Exception as exc:
        logger.warning("%s", summary, exc_info=exc)
        raise error_type(f"{summary}: {type(exc).__name__}: {exc}") from exc
