"""Bacho & Chu (2024), *Low-variance Forward Gradients using Direct Feedback Alignment and
momentum*: FC nets, a shallow CNN and AlexNet trained by BP, FG-W, FG-A, LG-FG-A, DFA, DKP and
FDFA (PyTorch). Importing this package does not import torch; ``train`` does, when called.
"""

from benchmarks.theory.specs import FIG5, FIG6

from .config import METHODS, estimate_seconds, validate_config
from .specs import TABLES as _TABLES

# The paper's tables, then its figures reproduced by the theory engine (benchmarks/theory).
TABLES = [*_TABLES, FIG5, FIG6]

__all__ = ["TABLES", "METHODS", "train", "validate_config", "estimate_seconds"]


def train(config: dict, *, data_root: str | None = None, progress=None, checkpoint: str | None = None) -> dict:
    from .training import train as _train

    return _train(config, data_root=data_root, progress=progress, checkpoint=checkpoint)
