"""Train one Bacho & Chu run: ``train(config) -> {"metrics", "data", "device", "versions"}``.

The whole dataset sits on the device as uint8 and batches are normalised (and resized for AlexNet)
on the fly, so a small net on MNIST is not bottlenecked by a data loader.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

from benchmarks import data
from benchmarks.torch_common import (describe_device, final_metrics, flush_denormals, pick_device,
                                     retain_freed_memory, save_checkpoint)
from benchmarks.torch_common import evaluate as _evaluate

from .models import build, count_params, hidden_sizes
from .rules import make_rule

EVAL_BATCH = 512


def memory_format(config: dict) -> torch.memory_format:
    """Channels-last for the conv nets: PyTorch's CPU max pooling is ~4x faster on it (the shallow
    CNN's BP step: 20.8 -> 15.8 ms, `bench --arch cnn`, one thread); the same numbers up to float
    summation order
    (tests/test_bacho_rules.py). Fully connected nets keep the default layout."""
    return torch.channels_last if config["arch"] in ("cnn", "alexnet") else torch.contiguous_format



class Batches:
    """Device-resident dataset; yields normalised float batches."""

    def __init__(self, x, y, config, device):
        self.x = torch.from_numpy(x).to(device)
        self.y = torch.from_numpy(y).long().to(device)
        self.mean, self.std = float(config["normalize_mean"]), float(config["normalize_std"])
        self.size = config.get("image_size")
        self.memory_format = memory_format(config)

    def __len__(self):
        return self.x.shape[0]

    def prep(self, xb):
        xb = (xb.float() / 255.0 - self.mean) / self.std
        if self.size and xb.shape[-1] != self.size:
            xb = F.interpolate(xb, size=(self.size, self.size), mode="bilinear", align_corners=False,
                               antialias=xb.shape[-1] > self.size)
        return xb.contiguous(memory_format=self.memory_format)

    def batches(self, batch_size, generator=None):
        n = len(self)
        order = torch.randperm(n, generator=generator).to(self.x.device) if generator is not None \
            else torch.arange(n, device=self.x.device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            yield self.prep(self.x[idx]), self.y[idx]


def evaluate(net, split: Batches) -> tuple[float, float]:
    return _evaluate(net, split, EVAL_BATCH)


def setup(config: dict, device: torch.device, n_classes: int, example: torch.Tensor, fmt=None):
    """Network, rule and optimisers of a run (shared by training and the step-time benchmark);
    ``fmt``: the nets' memory format (default ``memory_format(config)``; inputs in another layout
    give the same numbers, slower)."""
    net = build(config).to(device, memory_format=fmt or memory_format(config))
    rule = make_rule(config["method"], net, n_classes, example, config)
    # Adam on forward weights (and LG-FG-A's local heads) with lr decay; Adam without decay on
    # feedback matrices (paper Appendix A; decay on forward weights only, as in the authors' code).
    # fused=True: the same Adam update in one kernel; the unfused loop was most of a CPU step.
    opt = torch.optim.Adam(list(net.parameters()), lr=float(config["lr"]), fused=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=float(config["lr_decay"]))
    if rule.feedback_params():
        rule.feedback_opt = torch.optim.Adam(rule.feedback_params(), lr=float(config["feedback_lr"]), fused=True)
    return net, rule, opt, sched


def _state(net, rule, opt, sched, shuffle, curves, epoch, resumed) -> dict:
    """Everything needed to continue a run exactly where it stopped."""
    return {"epoch": epoch, "resumed": resumed, "curves": curves, "net": net.state_dict(),
            "opt": opt.state_dict(), "sched": sched.state_dict(),
            "feedback": [b.detach().clone() for b in getattr(rule, "B", [])],
            "feedback_opt": rule.feedback_opt.state_dict() if getattr(rule, "feedback_opt", None) else None,
            "rng": torch.get_rng_state(), "shuffle": shuffle.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}



def _restore(path: str, net, rule, opt, sched, shuffle, device) -> dict:
    ck = torch.load(path, map_location=device, weights_only=False)
    net.load_state_dict(ck["net"])
    opt.load_state_dict(ck["opt"])
    sched.load_state_dict(ck["sched"])
    with torch.no_grad():
        for b, saved in zip(getattr(rule, "B", []), ck["feedback"]):
            b.copy_(saved)
    if ck["feedback_opt"] is not None:
        rule.feedback_opt.load_state_dict(ck["feedback_opt"])
    torch.set_rng_state(ck["rng"])
    shuffle.set_state(ck["shuffle"])
    if ck["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ck["cuda_rng"])
    return ck


def train(config: dict, *, data_root: str | None = None, progress=None, checkpoint: str | None = None) -> dict:
    """Train one run. With ``checkpoint`` (a file path) the state is saved after every epoch and a
    run that finds the file resumes from it (SLURM preemption and time-outs requeue jobs)."""
    retain_freed_memory()  # the same numbers; no page faults on every step's fresh tensors
    with flush_denormals():  # bit-identical numbers, ~3x faster late in FC runs on CPU
        return _train(config, data_root=data_root, progress=progress, checkpoint=checkpoint)


def _train(config: dict, *, data_root, progress, checkpoint) -> dict:
    seed = int(config["seed"])
    device = pick_device()
    split = data.load(config["dataset"], config["data_source"], data_root,
                      n_train=config.get("n_train"), n_test=config.get("n_test"))
    train_set = Batches(split.x_train, split.y_train, config, device)
    test_set = Batches(split.x_test, split.y_test, config, device)

    torch.manual_seed(seed)
    example = train_set.prep(train_set.x[:2])
    net, rule, opt, sched = setup(config, device, split.n_classes, example)
    shuffle = torch.Generator().manual_seed(seed)

    curves = {"epoch": [], "train_loss": [], "test_acc": [], "test_loss": []}
    diverged = False
    epochs = int(config["epochs"])
    first, resumed = 1, 0
    if checkpoint and os.path.exists(checkpoint):
        ck = _restore(checkpoint, net, rule, opt, sched, shuffle, device)
        first, resumed, curves = ck["epoch"] + 1, ck["resumed"] + 1, ck["curves"]
    for epoch in range(first, epochs + 1):
        net.train()
        loss_sum = torch.zeros((), device=device)
        steps = 0
        for xb, yb in train_set.batches(int(config["batch_size"]), shuffle):
            loss = rule.step(xb, yb)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_sum += loss
            steps += 1
        sched.step()
        train_loss = loss_sum.item() / max(steps, 1)
        if not math.isfinite(train_loss):
            diverged = True
            break
        test_acc, test_loss = evaluate(net, test_set)
        for k, v in (("epoch", epoch), ("train_loss", train_loss), ("test_acc", test_acc), ("test_loss", test_loss)):
            curves[k].append(v)
        if checkpoint:
            save_checkpoint(checkpoint, _state(net, rule, opt, sched, shuffle, curves, epoch, resumed))
        if progress is not None:
            progress(epoch=epoch, epochs=epochs, train_loss=train_loss, test_acc=test_acc)

    metrics = final_metrics(net, train_set, curves, diverged, EVAL_BATCH)
    metrics["test_err"] = 100.0 - metrics["test_acc"]
    metrics["train_err"] = 100.0 - metrics["train_acc"]
    metrics.update(curves=curves, n_params=count_params(net),
                   n_neurons=sum(hidden_sizes(net, example)) + split.n_classes,
                   epochs_run=len(curves["epoch"]), resumed=resumed)
    import torchvision

    return {"metrics": metrics,
            "data": {"dataset": config["dataset"], "source": config["data_source"], "kind": split.kind,
                     "description": split.description},
            "device": describe_device(device),
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__}}
