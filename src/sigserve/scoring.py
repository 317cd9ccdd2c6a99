"""The request path, end to end: decode → enforce → predict → encode, whichever protocol's codec
decodes the request and encodes the answer."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sigserve.codecs.base import Decoded
from sigserve.codecs.limits import DEFAULT_LIMITS, DecodeLimits
from sigserve.codecs.mlflow.codec import MLFLOW
from sigserve.codecs.protocol import Codec, Encoded, Incoming, ModelInterface
from sigserve.enforce import enforce_input, enforce_params
from sigserve.errors import BadRequest, PredictionError, SigserveError
from sigserve.loaders.loader import LoadedModel
from sigserve.redact import without_paths

logger = logging.getLogger("sigserve.scoring")
_now = time.perf_counter_ns


class Phases:
    """When a request reached each step (`time.perf_counter_ns`; 0: never), for Triton's
    statistics and trace spans. The scheduler adds when it was handed over and its batch."""

    __slots__ = ("submitted", "decode", "enforce", "prepared", "predict", "encode", "done", "batch_size",
                 "first_in_batch")

    def __init__(self, decode: int) -> None:
        self.submitted = self.enforce = self.prepared = self.predict = self.encode = self.done = 0
        self.decode = decode
        self.batch_size = 0  # rows of the merged predict it was part of; 0: not batched
        self.first_in_batch = True  # the request that counts that predict once


@dataclass(frozen=True)
class Prepared:
    """A request decoded and enforced, ready for the model, with the encoder of its protocol."""

    model_input: Any
    params: dict[str, Any] | None
    format: str
    encode: Callable[[Any], bytes | Encoded]
    unified_llm: bool = False
    phases: Phases | None = None


@dataclass(frozen=True)
class Scored:
    """The response body, and what metrics want to know about the request."""

    body: bytes
    format: str
    rows: int | None
    predictions: Any = None  # what the model returned, for comparing a shadow version's
    answer: Encoded | None = None  # a non-JSON answer's media type and headers (V2 binary tensors)
    phases: Phases | None = None


class Scorer:
    """Holds a loaded model and its signature; `score` is safe to call from worker threads."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        signature = model.meta.signature
        self.input_schema = signature.inputs if signature else None
        self.param_specs = signature.params if signature else None
        self.interface = ModelInterface(
            input_schema=self.input_schema,
            param_names=frozenset(spec.name for spec in self.param_specs or ()),
            type_hints=model.meta.signature_from_type_hint,
            output_schema=signature.outputs if signature else None,
        )

    def example_failure(self) -> str | None:
        """Score the model's own serving example once (which also warms up lazy initialisation)
        and say why the model failed on it, or None. Only the model's own failure counts: an
        example the signature refuses may predate the signature, and is only logged."""
        example = self.model.meta.serving_input_path
        if example is None or not example.is_file():
            return None
        try:
            prepared = self.prepare("application/json", example.read_bytes())
        except (SigserveError, OSError) as exc:
            message = exc.message if isinstance(exc, SigserveError) else str(exc)
            logger.warning("the model's serving input example does not fit its signature; not warmed up: %s", message)
            return None
        try:
            prepared.encode(self._call_model(prepared))
        except Exception as exc:
            if _mlflow_refused_input(exc):  # MLflow's own enforcement: chat schemas, type hints
                logger.warning("the model's serving input example does not fit its signature; not warmed up: %s", exc)
                return None
            logger.debug("the model failed on its serving input example", exc_info=exc)
            return exc.message if isinstance(exc, SigserveError) else f"{type(exc).__name__}: {exc}"
        logger.info("warmed up with %s", example.name)
        return None

    def score(self, content_type: str | None, body: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> Scored:
        return self.run(self.prepare(content_type, body, limits))

    def run(self, prepared: Prepared) -> Scored:
        phases = prepared.phases
        if phases is not None:
            phases.predict = _now()
        with unexpected_as(PredictionError, "The model failed to predict on this input"):
            predictions = self._call_model(prepared)
        if phases is not None:
            phases.encode = _now()
        return self.finish(prepared, predictions)

    def _call_model(self, prepared: Prepared) -> Any:
        if prepared.unified_llm:
            assert self.model.predict_unified_llm is not None  # checked in prepare
            return self.model.predict_unified_llm(prepared.model_input, prepared.params)
        return self.model.predict(prepared.model_input, prepared.params)

    def prepare(self, content_type: str | None, body: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> Prepared:
        """An MLflow `/invocations` request (what `sigserve predict` and the tests send)."""
        return self.prepare_request(MLFLOW, Incoming(body, content_type), limits)

    def prepare_request(self, codec: Codec, request: Incoming, limits: DecodeLimits = DEFAULT_LIMITS) -> Prepared:
        """Decode with the protocol's codec and enforce the signature; the answer is the codec's."""
        phases = Phases(_now())
        with unexpected_as(BadRequest, "Could not read the request body"):
            decoded_request = codec.decode(request, self.interface, limits)
        decoded = decoded_request.decoded
        phases.enforce = _now()
        if decoded.unified_llm:
            prepared = self._prepare_unified_llm(decoded, decoded_request.encode, phases)
        else:
            model_input, params = self._enforce_decoded(decoded)
            prepared = Prepared(model_input, params, decoded.format, decoded_request.encode, phases=phases)
        phases.prepared = _now()
        return prepared

    def _prepare_unified_llm(self, decoded: Decoded, encode: Callable[[Any], bytes | Encoded],
                             phases: Phases) -> Prepared:
        """MLflow enforces these itself, against its chat schemas: they go to MLflow's own predict.
        A natively loaded model without a signature gets the dict as MLflow would hand it over."""
        if self.model.predict_unified_llm is None and self.input_schema is None:
            params = self._enforce_decoded(Decoded(decoded.data, decoded.params, decoded.format))[1]
            return Prepared(decoded.data.value, params, decoded.format, encode, phases=phases)
        if self.model.predict_unified_llm is None:
            error = BadRequest(
                "A top-level 'messages', 'prompt' or 'input' key makes this a unified LLM request, "
                f"which only models loaded through MLflow or without a signature take; this one "
                f"({self.model.meta.loader_module}) takes one of the fields dataframe_split, dataframe_records, "
                "instances or inputs"
            )
            error.payload_format = decoded.format
            raise error
        return Prepared(decoded.data.value, decoded.params, decoded.format, encode, unified_llm=True, phases=phases)

    def _enforce_decoded(self, decoded: Decoded) -> tuple[Any, dict[str, Any] | None]:
        try:
            return self.enforce(decoded)
        except SigserveError as exc:
            exc.payload_format = decoded.format
            raise

    def finish(self, prepared: Prepared, predictions: Any) -> Scored:
        with unexpected_as(PredictionError, "The model's predictions could not be encoded as JSON"):
            encoded = prepared.encode(predictions)
        body, answer = (encoded.body, encoded) if isinstance(encoded, Encoded) else (encoded, None)
        phases = prepared.phases
        if phases is not None:
            phases.done = _now()
        return Scored(body, prepared.format, _row_count(prepared.model_input), predictions, phases=phases,
                      answer=answer)

    def enforce(self, decoded: Decoded) -> tuple[Any, dict[str, Any] | None]:
        with unexpected_as(BadRequest, "The input does not match the model signature"):
            return enforce_input(decoded.data, self.input_schema), enforce_params(
                decoded.params, self.param_specs
            )


@contextlib.contextmanager
def unexpected_as(error_type: type[SigserveError], summary: str) -> Iterator[None]:
    """Re-raise anything that is not already a SigserveError as `error_type`, logged once."""
    try:
        yield
    except SigserveError:
        raise
    except Exception as exc:
        logger.warning("%s", summary, exc_info=exc)
        raise error_type(f"{summary}: {type(exc).__name__}: {without_paths(str(exc))}") from exc


def _mlflow_refused_input(exc: Exception) -> bool:
    """MLflow validates unified LLM payloads and type-hinted inputs inside predict, and says so
    with INVALID_PARAMETER_VALUE: a refusal of the input, not a failure of the model."""
    return type(exc).__name__ == "MlflowException" and getattr(exc, "error_code", None) == "INVALID_PARAMETER_VALUE"


def _row_count(model_input: Any) -> int | None:
    if isinstance(model_input, dict):
        model_input = next(iter(model_input.values()), None)
    try:
        return len(model_input)
    except TypeError:
        return None
