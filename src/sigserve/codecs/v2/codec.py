"""KServe V2 over REST, both directions: named tensors in (JSON, or the binary tensor data
extension), `{"model_name", "outputs"}` out (binary outputs when asked), errors as `{"error": message}`."""

from __future__ import annotations

import functools

from sigserve.codecs.json_encode import encode_json
from sigserve.codecs.limits import DecodeLimits
from sigserve.codecs.protocol import DecodedRequest, Incoming, ModelInterface
from sigserve.codecs.v2.decode import FORMAT, decode_v2
from sigserve.codecs.v2.encode import encode_v2_response, output_name


class V2Codec:
    name = "v2"
    default_format = FORMAT

    def decode(self, request: Incoming, model: ModelInterface, limits: DecodeLimits) -> DecodedRequest:
        decoded = decode_v2(request.body, model.input_schema, limits, request.binary_header_length)
        encode = functools.partial(
            encode_v2_response, model_name=request.model_name, model_version=request.model_version,
            request_id=decoded.id, wanted=decoded.outputs, default_name=output_name(model.output_schema),
            binary_outputs=decoded.binary_outputs, binary_by_output=decoded.binary_by_output,
        )
        return DecodedRequest(decoded.decoded, encode)

    def error_document(self, status: int, error_code: str, message: str) -> bytes:
        return encode_json({"error": message})


V2 = V2Codec()
