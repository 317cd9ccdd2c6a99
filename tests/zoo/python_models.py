"""PythonModels as MLflow's docs log them: artifacts and params, models from code, tensors and
type hints. They load through MLflow (native=False)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo import ZooModel

ZOO_DIR = Path(__file__).parent
JSON = "application/json"

NAMES = (
    "pythonmodel_artifacts_params",
    "model_from_code",
    "pythonmodel_tensor",
    "typehint_list_str",
    "typehint_list_dict",
    "typehint_pydantic",
    "example_list_of_dicts",
    "chat_model",
    "responses_agent",
)


def build(root: Path) -> dict[str, ZooModel]:
    import mlflow.pyfunc
    from mlflow.models import infer_signature
    from zoo import pyfunc_classes

    zoo: dict[str, ZooModel] = {}

    def save(name: str, rows: pd.DataFrame | None, requests: list[Any] = (), **kwargs) -> None:
        path = root / name
        mlflow.pyfunc.save_model(path, code_paths=[str(ZOO_DIR)], pip_requirements=["mlflow", "pandas", "numpy"],
                                 **kwargs)
        example = path / "serving_input_example.json"
        if example.is_file():
            requests = [json.loads(example.read_text()), *requests]
        zoo[name] = ZooModel(path, rows if rows is not None else pd.DataFrame(), native=False,
                             requests=tuple((JSON, body) for body in requests))

    weights = root / "weights.json"
    weights.write_text(json.dumps({"a": 0.5, "b": -2.0}))
    frame = pd.DataFrame({"a": [1.0, 2.5, -3.0], "b": [4.0, 0.25, 1.0]})
    signature = infer_signature(frame, np.zeros(3), params={"scale": 1.0})
    save("pythonmodel_artifacts_params", frame, python_model=pyfunc_classes.WeightedSum(),
         artifacts={"weights": str(weights)}, signature=signature, input_example=frame)

    values = pd.DataFrame({"value": [1.5, 2.0, -4.0]})
    save("model_from_code", values, python_model=str(ZOO_DIR / "code_model.py"),
         signature=infer_signature(values, values["value"] * 2), input_example=values)

    images = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    save("pythonmodel_tensor", None, [
        {"instances": images.tolist()}, {"inputs": images[:1].tolist()},
        {"inputs": [[1, 2, 3]]}, {"inputs": [[["a"] * 4] * 3]}, {"dataframe_split": {"data": [[1.0]]}},
    ], python_model=pyfunc_classes.TensorMean(),
        signature=infer_signature(images, images.mean(axis=(1, 2))), input_example=images)

    not_inputs = [{"dataframe_split": {"columns": ["x"], "data": [["a"]]}}, {"instances": ["a"]}, "hello", [],
                  {"inputs": "hello"}, {"inputs": []}, {"inputs": None}, {"inputs": [1, 2]}]
    save("typehint_list_str", None, [*not_inputs, {"inputs": ["a", "b"], "params": {"x": 1}}],
         python_model=pyfunc_classes.Upper(), input_example=["hello", "world"])
    save("typehint_list_dict", None, [*not_inputs, {"inputs": [{"greeting": "hi"}]}, {"inputs": [{"greeting": 1, "name": "x"}]},
                                      {"inputs": [{"greeting": "yo", "name": "bo", "extra": "x"}]}],
         python_model=pyfunc_classes.Greet(), input_example=[{"greeting": "hi", "name": "ann"}])
    save("typehint_pydantic", None, [*not_inputs, {"inputs": [{"title": "t"}]}, {"inputs": [{"title": "t", "priority": "high"}]},
                                     {"inputs": [{"title": "t", "priority": "2", "tags": None}]}, {"inputs": [{"priority": 1}]}],
         python_model=pyfunc_classes.Triage(), input_example=[{"title": "disk full", "priority": 1, "tags": ["ops"]}, {"title": "typo"}])
    save("example_list_of_dicts", None, [{"inputs": [{"a": "p", "b": "q"}, {"a": "r", "b": "s"}]}, {"inputs": [{"a": "p"}]}],
         python_model=pyfunc_classes.EchoFrame(), input_example=[{"a": "x", "b": "y"}])

    chat = [{"role": "user", "content": "hello there"}]
    save("chat_model", None, [
        {"messages": chat}, {"messages": chat, "temperature": 0.2, "max_tokens": 5}, {"messages": "hi"},
        {"messages": [{"content": "no role"}]}, {"inputs": {"messages": [chat]}}, {"prompt": "hi"},
    ], python_model=pyfunc_classes.ShoutChat())
    save("responses_agent", None, [
        {"input": chat, "custom_inputs": {"k": "v"}}, {"input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]},
        {"input": "hi"}, {"input": [{"role": "user"}]}, {"messages": chat},
    ], python_model=pyfunc_classes.ShoutAgent(), input_example={"input": [{"role": "user", "content": "hi"}]})
    assert tuple(zoo) == NAMES
    return zoo
