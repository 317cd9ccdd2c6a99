"""The Open Inference Protocol (KServe V2) over gRPC: its messages and the codec of `ModelInfer`.

Never imports another protocol's folder; the V2 tensor core (`codecs/tensors.py`) is shared with
V2 over REST (JSON and binary), so that all three give the same verdicts.
"""
