"""The model zoo: pretrained models shipped in the repository (safetensors), by name."""

from aecore.zoo.weights import load_weights, save_weights

__all__ = ["load_weights", "save_weights"]
