"""The demo model shipped with sigserve: iris, as a numpy-only custom loader_module model."""

from pathlib import Path

DEMO_MODEL_DIR = Path(__file__).parent / "model"
