# Generated from grpc_predict_v2.proto by grpcio-tools' protoc (libprotoc 33.5); do not edit.
# Regenerate after editing the .proto (tests/test_grpc.py checks that the two agree):
#   python -m grpc_tools.protoc -I src/sigserve/codecs/grpc --descriptor_set_out=/dev/stdout grpc_predict_v2.proto
# and store the set's one FileDescriptorProto, named "sigserve/grpc_predict_v2.proto", here (the test shows how).
"""The serialized descriptor of grpc_predict_v2.proto (a FileDescriptorProto)."""

SERIALIZED = (
    b'\n\x1esigserve/grpc_predict_v2.proto\x12\tinference"\x13\n\x11ServerLiveRequest"(\n\x12ServerLiveResponse\x12\x12\n\x04live\x18\x01'
    b' \x01(\x08R\x04live"\x14\n\x12ServerReadyRequest"+\n\x13ServerReadyResponse\x12\x14\n\x05ready\x18\x01 \x01(\x08R\x05ready"A\n\x11ModelReadyReque'
    b'st\x12\x12\n\x04name\x18\x01 \x01(\tR\x04name\x12\x18\n\x07version\x18\x02 \x01(\tR\x07version"*\n\x12ModelReadyResponse\x12\x14\n\x05ready\x18\x01 \x01(\x08R\x05ready"\x17\n\x15'
    b'ServerMetadataRequest"f\n\x16ServerMetadataResponse\x12\x12\n\x04name\x18\x01 \x01(\tR\x04name\x12\x18\n\x07version\x18\x02 \x01(\tR\x07version\x12\x1e\n'
    b'\nextensions\x18\x03 \x03(\tR\nextensions"D\n\x14ModelMetadataRequest\x12\x12\n\x04name\x18\x01 \x01(\tR\x04name\x12\x18\n\x07version\x18\x02 \x01(\tR\x07vers'
    b'ion"\xcf\x02\n\x15ModelMetadataResponse\x12\x12\n\x04name\x18\x01 \x01(\tR\x04name\x12\x1a\n\x08versions\x18\x02 \x03(\tR\x08versions\x12\x1a\n\x08platform\x18\x03 \x01(\tR'
    b'\x08platform\x12G\n\x06inputs\x18\x04 \x03(\x0b2/.inference.ModelMetadataResponse.TensorMetadataR\x06inputs\x12I\n\x07outputs\x18\x05 '
    b'\x03(\x0b2/.inference.ModelMetadataResponse.TensorMetadataR\x07outputs\x1aV\n\x0eTensorMetadata\x12\x12\n\x04name\x18\x01 \x01(\tR\x04n'
    b'ame\x12\x1a\n\x08datatype\x18\x02 \x01(\tR\x08datatype\x12\x14\n\x05shape\x18\x03 \x03(\x03R\x05shape"\x9d\x08\n\x11ModelInferRequest\x12\x1d\n\nmodel_name\x18\x01 \x01(\tR'
    b'\tmodelName\x12#\n\rmodel_version\x18\x02 \x01(\tR\x0cmodelVersion\x12\x0e\n\x02id\x18\x03 \x01(\tR\x02id\x12L\n\nparameters\x18\x04 \x03(\x0b2,.inference.'
    b'ModelInferRequest.ParametersEntryR\nparameters\x12E\n\x06inputs\x18\x05 \x03(\x0b2-.inference.ModelInferRequest.Infe'
    b'rInputTensorR\x06inputs\x12Q\n\x07outputs\x18\x06 \x03(\x0b27.inference.ModelInferRequest.InferRequestedOutputTensorR\x07'
    b'outputs\x12,\n\x12raw_input_contents\x18\x07 \x03(\x0cR\x10rawInputContents\x1a\xcd\x02\n\x10InferInputTensor\x12\x12\n\x04name\x18\x01 \x01(\tR\x04name\x12\x1a'
    b'\n\x08datatype\x18\x02 \x01(\tR\x08datatype\x12\x14\n\x05shape\x18\x03 \x03(\x03R\x05shape\x12]\n\nparameters\x18\x04 \x03(\x0b2=.inference.ModelInferReque'
    b'st.InferInputTensor.ParametersEntryR\nparameters\x12:\n\x08contents\x18\x05 \x01(\x0b2\x1e.inference.InferTensorContent'
    b'sR\x08contents\x1aX\n\x0fParametersEntry\x12\x10\n\x03key\x18\x01 \x01(\tR\x03key\x12/\n\x05value\x18\x02 \x01(\x0b2\x19.inference.InferParameterR\x05valu'
    b'e:\x028\x01\x1a\xf3\x01\n\x1aInferRequestedOutputTensor\x12\x12\n\x04name\x18\x01 \x01(\tR\x04name\x12g\n\nparameters\x18\x02 \x03(\x0b2G.inference.ModelIn'
    b'ferRequest.InferRequestedOutputTensor.ParametersEntryR\nparameters\x1aX\n\x0fParametersEntry\x12\x10\n\x03key\x18\x01 \x01('
    b'\tR\x03key\x12/\n\x05value\x18\x02 \x01(\x0b2\x19.inference.InferParameterR\x05value:\x028\x01\x1aX\n\x0fParametersEntry\x12\x10\n\x03key\x18\x01 \x01(\tR\x03key'
    b'\x12/\n\x05value\x18\x02 \x01(\x0b2\x19.inference.InferParameterR\x05value:\x028\x01"\xdf\x05\n\x12ModelInferResponse\x12\x1d\n\nmodel_name\x18\x01 \x01(\t'
    b'R\tmodelName\x12#\n\rmodel_version\x18\x02 \x01(\tR\x0cmodelVersion\x12\x0e\n\x02id\x18\x03 \x01(\tR\x02id\x12M\n\nparameters\x18\x04 \x03(\x0b2-.inference'
    b'.ModelInferResponse.ParametersEntryR\nparameters\x12I\n\x07outputs\x18\x05 \x03(\x0b2/.inference.ModelInferResponse.'
    b'InferOutputTensorR\x07outputs\x12.\n\x13raw_output_contents\x18\x06 \x03(\x0cR\x11rawOutputContents\x1a\xd0\x02\n\x11InferOutputTensor'
    b'\x12\x12\n\x04name\x18\x01 \x01(\tR\x04name\x12\x1a\n\x08datatype\x18\x02 \x01(\tR\x08datatype\x12\x14\n\x05shape\x18\x03 \x03(\x03R\x05shape\x12_\n\nparameters\x18\x04 \x03(\x0b2?.inf'
    b'erence.ModelInferResponse.InferOutputTensor.ParametersEntryR\nparameters\x12:\n\x08contents\x18\x05 \x01(\x0b2\x1e.infe'
    b'rence.InferTensorContentsR\x08contents\x1aX\n\x0fParametersEntry\x12\x10\n\x03key\x18\x01 \x01(\tR\x03key\x12/\n\x05value\x18\x02 \x01(\x0b2\x19.infere'
    b'nce.InferParameterR\x05value:\x028\x01\x1aX\n\x0fParametersEntry\x12\x10\n\x03key\x18\x01 \x01(\tR\x03key\x12/\n\x05value\x18\x02 \x01(\x0b2\x19.inference.In'
    b'ferParameterR\x05value:\x028\x01"\xd7\x01\n\x0eInferParameter\x12\x1f\n\nbool_param\x18\x01 \x01(\x08H\x00R\tboolParam\x12!\n\x0bint64_param\x18\x02 \x01(\x03'
    b'H\x00R\nint64Param\x12#\n\x0cstring_param\x18\x03 \x01(\tH\x00R\x0bstringParam\x12#\n\x0cdouble_param\x18\x04 \x01(\x01H\x00R\x0bdoubleParam\x12#\n\x0cuint'
    b'64_param\x18\x05 \x01(\x04H\x00R\x0buint64ParamB\x12\n\x10parameter_choice"\xc3\x02\n\x13InferTensorContents\x12#\n\rbool_contents\x18\x01 \x03(\x08'
    b'R\x0cboolContents\x12!\n\x0cint_contents\x18\x02 \x03(\x05R\x0bintContents\x12%\n\x0eint64_contents\x18\x03 \x03(\x03R\rint64Contents\x12#\n\ruint'
    b"_contents\x18\x04 \x03(\rR\x0cuintContents\x12'\n\x0fuint64_contents\x18\x05 \x03(\x04R\x0euint64Contents\x12#\n\rfp32_contents\x18\x06 \x03(\x02R\x0cf"
    b'p32Contents\x12#\n\rfp64_contents\x18\x07 \x03(\x01R\x0cfp64Contents\x12%\n\x0ebytes_contents\x18\x08 \x03(\x0cR\rbytesContents2\xfc\x03\n\x14GRPC'
    b'InferenceService\x12K\n\nServerLive\x12\x1c.inference.ServerLiveRequest\x1a\x1d.inference.ServerLiveResponse"\x00\x12N\n'
    b'\x0bServerReady\x12\x1d.inference.ServerReadyRequest\x1a\x1e.inference.ServerReadyResponse"\x00\x12K\n\nModelReady\x12\x1c.in'
    b'ference.ModelReadyRequest\x1a\x1d.inference.ModelReadyResponse"\x00\x12W\n\x0eServerMetadata\x12 .inference.ServerM'
    b'etadataRequest\x1a!.inference.ServerMetadataResponse"\x00\x12T\n\rModelMetadata\x12\x1f.inference.ModelMetadataRe'
    b'quest\x1a .inference.ModelMetadataResponse"\x00\x12K\n\nModelInfer\x12\x1c.inference.ModelInferRequest\x1a\x1d.inferenc'
    b'e.ModelInferResponse"\x00b\x06proto3'
)
