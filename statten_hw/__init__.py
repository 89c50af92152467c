"""statten-hw: take trained spiking transformers to neuromorphic hardware."""
from statten_hw.models import ModelConfig, load_checkpoint

__version__ = "0.1.0"
__all__ = ["ModelConfig", "load_checkpoint", "__version__"]
