"""Step-time benchmark: forward-gradient steps vs an end-to-end backprop step on the same ResNet-18.

    python -m benchmarks.fournier2023.bench                    # CPU: width 0.25, batch 32, 32 px
    python -m benchmarks.fournier2023.bench --width 1 --batch 256   # the paper's width and batch

Every method trains the same split ResNet-18 (8 blocks, CIFAR-10 shapes; the local guesses use the
CNN auxiliary); each timed step is a full training step (estimate + SGD update), as in training.
Methods are timed in interleaved rounds (e2e, fg..., e2e, fg...) so that drift in machine load hits
all alike; the median over rounds of the mean step time is reported. On a GPU the paper's width 1,
batch 256 is also timed in the same run unless --width/--batch are given.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from .training import describe_device, pick_device, retain_freed_memory, setup

METHODS = {  # name -> config overrides of the e2e base
    "e2e": dict(algorithm="e2e", target=None, guess=None, aux=None, space=None, projection=None),
    "local (DGL)": dict(algorithm="local", target=None, guess=None, aux="cnn", space=None, projection=None),
    "LG weight": dict(algorithm="fg", target="global", guess="local", aux="cnn", space="weight", projection="guess"),
    "LG activity": dict(algorithm="fg", target="global", guess="local", aux="cnn", space="activity", projection="guess"),
    "Gauss weight": dict(algorithm="fg", target="global", guess="gaussian", aux=None, space="weight", projection="guess"),
    "Gauss activity": dict(algorithm="fg", target="global", guess="gaussian", aux=None, space="activity", projection="guess"),
}


def _base(width: float, batch: int) -> dict:
    return {"dataset": "cifar10", "n_blocks": 8, "width_factor": width, "stem": "small", "image_size": 32,
            "aux_hidden": 32, "aux_depth": 3, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
            "weight_decay": 5e-4, "batch_size": batch, "epochs": 1, "lr_step": 30, "lr_gamma": 0.2,
            "augment": False, "n_train": None, "n_test": None}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_methods(width: float, batch: int, steps: int, rounds: int, device, methods) -> dict[str, float]:
    """Median over rounds of the mean seconds per full training step, per method."""
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    runs = {}
    for name in methods:
        _, stepper, opt, _ = setup({**_base(width, batch), **METHODS[name]}, device, 3, 10)
        runs[name] = (stepper, opt)

    def one(name):
        stepper, opt = runs[name]
        stepper.step(x, y)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for name in methods:  # warm-up (allocator, kernels)
        one(name)
    _sync(device)
    times = {name: [] for name in methods}
    for _ in range(rounds):
        for name in methods:
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                one(name)
            _sync(device)
            times[name].append((time.perf_counter() - t0) / steps)
    return {name: statistics.median(v) for name, v in times.items()}


def report(width, batch, device, results) -> str:
    lines = [f"step time, ResNet-18 8 blocks, width {width:g}, batch {batch}, 32 px, {describe_device(device)}, "
             f"torch {torch.__version__}",
             f"{'method':<16}{'ms/step':>10}{'x e2e':>8}"]
    base = results["e2e"]
    for name, t in results.items():
        lines.append(f"{name:<16}{1000 * t:>10.1f}{t / base:>8.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fournier2023.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=float, default=None, help="width factor (CPU default 0.25)")
    p.add_argument("--batch", type=int, default=None, help="batch size (CPU default 32)")
    p.add_argument("--steps", type=int, default=3, help="steps per method per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = p.parse_args(argv)
    retain_freed_memory()  # as in training
    device = pick_device()
    methods = ["e2e"] + [m for m in args.methods if m != "e2e"]
    settings = [(args.width or 0.25, args.batch or 32)]
    if device.type == "cuda" and args.width is None and args.batch is None:
        settings.append((1.0, 256))  # the paper's ResNet-18 and the authors' largest batch
    for width, batch in settings:
        results = time_methods(width, batch, args.steps, args.rounds, device, methods)
        print(report(width, batch, device, results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
