"""Fournier et al. (ICML 2023), *Can Forward Gradient Match Backpropagation?*: a ResNet-18 split into
8 or 16 blocks, trained end to end, by local learning, or by forward gradients (a Gradient Target
projected on a Gradient Guess: local auxiliary, NTK, fixed NTK, Gaussian, Rademacher) in activity or
weight space (PyTorch). Importing this package does not import torch; ``train`` does, when called.
"""

from .config import (
    estimate_seconds,
    learning_rate,
    make_config,
    protocol,
    validate_config,
)
from .specs import TABLES

__all__ = ["TABLES", "estimate_seconds", "learning_rate", "make_config", "protocol", "train", "validate_config"]


def train(config: dict, *, data_root: str | None = None, progress=None, checkpoint: str | None = None) -> dict:
    from .training import train as _train

    return _train(config, data_root=data_root, progress=progress, checkpoint=checkpoint)
