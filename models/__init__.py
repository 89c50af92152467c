"""PyTorch model zoo (float reference semantics) and checkpoint loading."""
from .checkpoint import build_model, load_checkpoint
from .config import ModelConfig

__all__ = ["ModelConfig", "build_model", "load_checkpoint"]
