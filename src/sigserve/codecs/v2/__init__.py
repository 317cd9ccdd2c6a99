"""KServe V2 (Open Inference Protocol) over REST: the request decoder and the answer encoder.

Never imports `codecs.mlflow`; shares only the modules in `codecs/`.
"""
