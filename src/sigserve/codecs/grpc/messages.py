"""The protocol's message classes, built from the committed descriptor in a pool of their own.

A private pool, not protobuf's default one: tritonclient and the kserve SDK register their own
`inference.*` messages there, and a second definition in one process would fail to load. Built
from the serialized descriptor rather than generated `_pb2` code, so no gencode version check
ties sigserve to one protobuf release (any protobuf from 4.21, where `GetMessageClass` appeared).
"""

from __future__ import annotations

from google.protobuf import descriptor_pool, message_factory

from sigserve.codecs.grpc.grpc_predict_v2_descriptor import SERIALIZED

SERVICE = "inference.GRPCInferenceService"

_pool = descriptor_pool.DescriptorPool()
_pool.AddSerializedFile(SERIALIZED)


def _message(name: str) -> type:
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"inference.{name}"))


ServerLiveRequest = _message("ServerLiveRequest")
ServerLiveResponse = _message("ServerLiveResponse")
ServerReadyRequest = _message("ServerReadyRequest")
ServerReadyResponse = _message("ServerReadyResponse")
ModelReadyRequest = _message("ModelReadyRequest")
ModelReadyResponse = _message("ModelReadyResponse")
ServerMetadataRequest = _message("ServerMetadataRequest")
ServerMetadataResponse = _message("ServerMetadataResponse")
ModelMetadataRequest = _message("ModelMetadataRequest")
ModelMetadataResponse = _message("ModelMetadataResponse")
ModelInferRequest = _message("ModelInferRequest")
ModelInferResponse = _message("ModelInferResponse")
InferParameter = _message("InferParameter")
InferTensorContents = _message("InferTensorContents")
