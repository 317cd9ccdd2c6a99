"""MLflow's `/invocations` protocol, both directions: JSON fields, CSV and Parquet in,
`{"predictions": …}` out (unified LLM payloads answered unwrapped), errors as
`{"error_code", "message"}`."""

from __future__ import annotations

from sigserve.codecs.json_encode import encode_json
from sigserve.codecs.limits import DecodeLimits
from sigserve.codecs.mlflow import decode
from sigserve.codecs.mlflow.encode import encode_predictions, encode_unwrapped
from sigserve.codecs.protocol import DecodedRequest, Incoming, ModelInterface


class MlflowCodec:
    name = "mlflow"
    default_format = "json"

    def decode(self, request: Incoming, model: ModelInterface, limits: DecodeLimits) -> DecodedRequest:
        decoded = decode(request.content_type, request.body, model.input_schema, type_hints=model.type_hints,
                         param_names=model.param_names, limits=limits)
        return DecodedRequest(decoded, encode_unwrapped if decoded.unified_llm else encode_predictions)

    def error_document(self, status: int, error_code: str, message: str) -> bytes:
        return encode_json({"error_code": error_code, "message": message})


MLFLOW = MlflowCodec()
