"""Ren, Kornblith, Liao & Hinton (ICLR 2023), *Scaling Forward Gradient with Local Losses*: the
LocalMixer trained by BP, local and local-greedy BP, FA, DFA and weight- or activity-perturbed forward
gradients with local losses (JAX/Flax, like the authors' code). Importing this package does not
import jax; ``train`` does, when called.
"""

from benchmarks.theory.specs import FIG8

from .config import ARCHS, METHODS, estimate_seconds, protocol, validate_config
from .specs import TABLES as _TABLES

# The paper's tables, then Fig. 8 (Appendix 10) reproduced by the theory engine (benchmarks/theory).
TABLES = [*_TABLES, FIG8]

__all__ = ["TABLES", "ARCHS", "METHODS", "protocol", "train", "validate_config", "estimate_seconds"]


def train(config: dict, *, data_root: str | None = None, progress=None, checkpoint: str | None = None) -> dict:
    from .training import train as _train

    return _train(config, data_root=data_root, progress=progress, checkpoint=checkpoint)
