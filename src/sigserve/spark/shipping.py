"""A model directory shipped to the executors once, as a Spark archive (which Spark unpacks on
each executor, on a cluster as in local mode), and loaded once per executor Python process."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from sigserve.batch.packing import pack_model
from sigserve.loaders.loader import LoadedModel, load_model

_loaded: dict[str, LoadedModel] = {}
_loading = threading.Lock()


def ship_model(spark: Any, model_dir: Path) -> str:
    """The archive's name, by which executors find the unpacked model (`executor_model`)."""
    name = f"sigserve-model-{uuid.uuid4().hex}.tar"
    staging = Path(tempfile.mkdtemp(prefix="sigserve-spark-"))
    atexit.register(shutil.rmtree, staging, True)  # the driver serves it to executors until it exits
    archive = staging / name
    with open(archive, "wb") as file:
        pack_model(model_dir, file)
    spark.sparkContext.addArchive(str(archive))
    return name


def executor_model(name: str) -> LoadedModel:
    """The shipped model, loaded on first use in this Python worker and kept for its next tasks."""
    with _loading:
        model = _loaded.get(name)
        if model is None:
            from pyspark import SparkFiles

            model = _loaded[name] = load_model(SparkFiles.get(name))
        return model
