"""Codecs: one per protocol, each decoding its requests and encoding its answers.

`mlflow/` is MLflow's `/invocations` protocol (JSON fields, CSV, Parquet), `v2/` KServe's Open
Inference Protocol. The modules here are what protocols share: decoded data (`base.py`), tables,
limits, Arrow and JSON helpers. A new protocol is a new folder.

Imports only `model` and the base modules: never `enforce`, `loaders`, `sources` or anything
above; the shared modules never import a protocol's folder, nor one protocol another.
"""
