"""PythonModels of the zoo. MLflow pickles them by reference, so they live in a module that is
shipped with each model (`code_paths`)."""

from __future__ import annotations

import json
from typing import Optional

import numpy as np
import pandas as pd
import pydantic

import mlflow.pyfunc


class WeightedSum(mlflow.pyfunc.PythonModel):
    """Reads its weights from an artifact in `load_context`; `scale` comes from params."""

    def load_context(self, context):
        with open(context.artifacts["weights"]) as handle:
            self.weights = json.load(handle)

    def predict(self, context, model_input, params=None):
        scale = (params or {}).get("scale", 1.0)
        total = sum(model_input[name].astype("float64") * weight for name, weight in self.weights.items())
        return (total * scale).to_numpy()


class TensorMean(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return np.asarray(model_input, dtype=np.float32).reshape(len(model_input), -1).mean(axis=1)


class Upper(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return [text.upper() for text in model_input]


class Greet(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[dict[str, str]], params=None) -> list[str]:
        return [f"{row['greeting']}, {row['name']}" for row in model_input]


class Ticket(pydantic.BaseModel):
    title: str
    priority: int = 3
    tags: Optional[list[str]] = None


class Triage(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[Ticket], params=None) -> list[str]:
        return [f"{ticket.title}:{ticket.priority}:{','.join(ticket.tags or [])}" for ticket in model_input]


class EchoFrame(mlflow.pyfunc.PythonModel):
    """No type hints: the signature comes from a list-of-dicts example, so MLflow hands the
    enforced frame back in the example's shape."""

    def predict(self, context, model_input, params=None):
        if isinstance(model_input, pd.DataFrame):
            return {"kind": ["frame"]}
        return {"kind": [type(model_input).__name__]}


class ShoutChat(mlflow.pyfunc.ChatModel):
    """A ChatModel answering the last message in capitals; `id` and `created` fixed so two runs
    of the same request compare equal."""

    def predict(self, context, messages, params):
        from mlflow.types.llm import ChatChoice, ChatCompletionResponse, ChatMessage

        reply = ChatMessage(role="assistant", content=messages[-1].content.upper())
        return ChatCompletionResponse(choices=[ChatChoice(index=0, message=reply)], model="shout", id="1", created=0)


class ShoutAgent(mlflow.pyfunc.ResponsesAgent):
    def predict(self, request):
        from mlflow.types.responses import ResponsesAgentResponse

        text = request.input[-1].content
        text = text if isinstance(text, str) else " ".join(part["text"] for part in text)
        item = self.create_text_output_item(text=text.upper(), id="msg-1")
        return ResponsesAgentResponse(output=[item], custom_outputs=request.custom_inputs)
