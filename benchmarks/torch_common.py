"""Training helpers shared by the PyTorch engines (bacho2024, fournier2023): device choice,
evaluation, atomic checkpoints, subnormal flushing and heap retention. Imports torch; the framework-free core never
imports it."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
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


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)
_TRIM_THRESHOLD = 2 ** 31 - 1  # bytes of free heap top kept before glibc returns it (an int)
_heap_retained: bool | None = None


def retain_freed_memory() -> bool:
    """Keep memory that PyTorch frees in the process heap instead of handing it back to the OS
    (glibc's mallopt: blocks up to 32 MiB come from the heap, and the heap top is never trimmed).
    Process-wide and idempotent; returns whether it took effect (False off glibc).

    Why: PyTorch's CPU allocator has no cache, so every activation and gradient of a step is a
    fresh malloc. glibc serves multi-MiB blocks by mmap, or trims the heap top once more than twice
    the last such block is free, and the next step's tensors then page-fault their memory back in,
    zero-filled by the kernel: 4-5 k minor faults a step in Table 2's one-pool CNN (batch 64), and
    its one-thread BP step took ~61 ms instead of ~47. Which addresses tensors get changes nothing
    they compute, so runs are bit-identical (tests/test_bacho_rules.py). The cost is a resident set
    that stays at the run's peak, as it would with a caching allocator."""
    global _heap_retained
    if _heap_retained is None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            mallopt = libc.mallopt if libc is not None else None
        except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to set
            mallopt = None
        _heap_retained = bool(mallopt and mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                              and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _heap_retained


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
