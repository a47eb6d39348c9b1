"""Training helpers shared by the PyTorch engines (bacho2024, fournier2023): device choice,
evaluation, atomic checkpoints and subnormal flushing. Imports torch; the framework-free core never
imports it."""

from __future__ import annotations

import contextlib
import math
import os

import torch
import torch.nn.functional as F


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


@contextlib.contextmanager
def flush_denormals():
    """Treat subnormal floats as zero on the CPU (FTZ/DAZ) for the duration of a run.

    Why: Adam's first moment of a weight whose gradient is exactly 0 (a ReLU unit silent on the
    whole batch, common in nets without batch norm) decays by beta1 a step into the subnormal range
    and stays there, since 0.9 x a few times the smallest subnormal rounds back up. Ten epochs into
    Table 1's LG-FG-A run, 1.2 M of its 1.9 M moments were subnormal, and CPUs take ~100x longer
    on such operands: the one-thread step went from 16 ms to 45 ms. Values below 1.2e-38 move an
    update by less than float32 can represent next to the weights, so the run is unchanged: 300
    steps from that checkpoint gave bit-identical weights with and without flushing, as does
    tests/test_bacho_rules.py on a small net. GPUs handle subnormals at full speed; nothing changes
    there. The flag is restored on exit so that no other code in the process sees it."""
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(False)


@torch.no_grad()
def evaluate(net, split, batch_size: int) -> tuple[float, float]:
    """(accuracy %, mean loss) of ``net`` on ``split`` (anything with ``batches(n)`` and ``len``),
    in eval mode: batch norm uses its running statistics."""
    was_training = net.training
    net.eval()
    correct, loss_sum = 0, 0.0
    for xb, yb in split.batches(batch_size):
        logits = net(xb)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    net.train(was_training)
    n = len(split)
    return 100.0 * correct / n, loss_sum / n


def final_metrics(net, train_set, curves: dict, diverged: bool, batch_size: int) -> dict:
    """End-of-run accuracies: the last epoch's test numbers and a fresh pass over the training set;
    a diverged run (NaN loss) reports NaN accuracies and ``diverged``, which is a result, not a failure."""
    if diverged:
        return {"test_acc": math.nan, "train_acc": math.nan, "diverged": True}
    train_acc, train_loss = evaluate(net, train_set, batch_size)
    return {"test_acc": curves["test_acc"][-1], "test_loss": curves["test_loss"][-1],
            "train_acc": train_acc, "train_loss": train_loss}


def save_checkpoint(path: str, state: dict) -> None:
    """Write a checkpoint atomically: a temp file beside it, flushed to disk, then renamed over it."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # a kill mid-save leaves the previous checkpoint intact
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
