"""Step-time benchmark: every learning rule vs backprop on the same net, in one run.

    python -m benchmarks.bacho2024.bench                 # 784-800x3-10, batch 64 (Table 1's net)
    python -m benchmarks.bacho2024.bench --arch cnn      # the shallow CNN of Table 2

Methods are timed in interleaved rounds (BP, FG-W, ..., BP, FG-W, ...) so that drift in machine
load hits all of them alike; the median over rounds of the mean step time is reported, each step
being a full training step (estimate + optimiser update), as in training, and beside it the
estimate alone, which the FLOP targets are about.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from .config import METHODS
from .training import describe_device, flush_denormals, memory_format, pick_device, retain_freed_memory, setup

# The team's FLOP floors, as ratios to BP: FG-A does BP's matmul work; LG-FG-A and DFA skip the
# global backward; FG-W pays for its tangents.
TARGETS = {"FG-A": 1.0, "LG-FG-A": 0.75, "DFA": 0.75, "FG-W": 1.5}
JAX_TARGET = 1.1  # the torch BP step against a jitted JAX BP step of the same net and batch


def _jax_bp_step(dims, x, y, lr):
    """A jitted JAX BP step (Adam, cross-entropy) of the fc net with these widths: the reference
    for the torch engine's BP step. None where JAX is not installed."""
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError:
        return None
    keys = jax.random.split(jax.random.key(0), len(dims) - 1)
    params = [(jax.random.normal(k, (a, b)) * a ** -0.5, jnp.zeros(b)) for k, a, b in zip(keys, dims[:-1], dims[1:])]
    tx = optax.adam(lr)
    xj, yj = jnp.asarray(x.reshape(x.shape[0], -1).cpu().numpy()), jnp.asarray(y.cpu().numpy())

    def loss(p):
        h = xj
        for i, (w, b) in enumerate(p):
            h = h @ w + b
            h = jax.nn.relu(h) if i < len(p) - 1 else h
        return optax.softmax_cross_entropy_with_integer_labels(h, yj).mean()

    @jax.jit
    def step(p, s):
        updates, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, updates), s

    state = [params, tx.init(params)]

    def run():
        state[:] = step(*state)
        jax.block_until_ready(state[0])
    return run


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bacho2024.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="fc", choices=("fc", "cnn", "alexnet"))
    p.add_argument("--depth", type=int, default=4, help="fc layers (default 4: 784-800x3-10)")
    p.add_argument("--hidden", type=int, default=800)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="steps per method per round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--no-jax", action="store_true", help="fc only: skip the jitted JAX BP reference step")
    args = p.parse_args(argv)
    retain_freed_memory()  # as in training
    with flush_denormals():  # as in training (fresh nets have no subnormals; trained ones do)
        return _bench(args)


def _bench(args) -> int:
    from .models import DATASET_SHAPES

    device = pick_device()
    (c, h, w), n_classes = DATASET_SHAPES[args.dataset]
    base = {"arch": args.arch, "depth": args.depth, "hidden": args.hidden, "dataset": args.dataset,
            "lr": 1e-4, "lr_decay": 0.95, "feedback_lr": 1e-4, "batchnorm": args.arch == "alexnet",
            "image_size": 224 if args.arch == "alexnet" else None, "dfa_zero_init": True}
    size = base["image_size"] or h
    torch.manual_seed(0)
    x = torch.randn(args.batch, c, size, size, device=device).contiguous(memory_format=memory_format(base))
    y = torch.randint(0, n_classes, (args.batch,), device=device)
    methods = ["BP"] + [m for m in args.methods if m != "BP"]
    runs = {}
    for m in methods:
        net, rule, opt, _ = setup({**base, "method": m}, device, n_classes, x[:2])
        runs[m] = (rule, opt)
    jax_step = None
    if args.arch == "fc" and not args.no_jax and device.type == "cpu":
        jax_step = _jax_bp_step([c * size * size] + [args.hidden] * (args.depth - 1) + [n_classes], x, y, 1e-4)
    if jax_step is not None:
        methods.append("BP (JAX)")
    times = {m: [] for m in methods}
    est_times = {m: [] for m in methods}  # the gradient estimate alone, without the optimiser update

    def steps(m, n):
        """Seconds spent in the estimates of n full steps (None for the JAX step, timed whole)."""
        if m == "BP (JAX)":
            for _ in range(n):
                jax_step()
            return None
        rule, opt = runs[m]
        est = 0.0
        for _ in range(n):
            _sync(device)
            t0 = time.perf_counter()
            rule.step(x, y)
            _sync(device)
            est += time.perf_counter() - t0
            opt.step()
            opt.zero_grad(set_to_none=True)
        return est

    for m in methods:  # warm-up
        steps(m, 3)
    for _ in range(args.rounds):
        for m in methods:
            _sync(device)
            t0 = time.perf_counter()
            est = steps(m, args.steps)
            _sync(device)
            times[m].append((time.perf_counter() - t0) / args.steps * 1e3)
            if est is not None:
                est_times[m].append(est / args.steps * 1e3)

    bp = statistics.median(times["BP"])
    bp_est = statistics.median(est_times["BP"])
    desc = f"{args.arch}" + (f" depth {args.depth} hidden {args.hidden}" if args.arch == "fc" else "")
    print(f"step time, {desc}, {args.dataset}, batch {args.batch}, {describe_device(device)}, "
          f"torch {torch.__version__}; median of {args.rounds} rounds x {args.steps} steps")
    print("step: estimate + Adam update; estimate: the rule's gradient computation alone, which the "
          "FLOP targets are about (every rule pays the same Adam update on the same weights)")
    print(f"{'method':8} {'ms/step':>8} {'x BP':>6} {'estimate':>9} {'x BP':>6}  target (estimate)")
    for m in methods:
        t = statistics.median(times[m])
        if m == "BP (JAX)":
            note = f"torch BP = {bp / t:.2f}x this; <= {JAX_TARGET}x " + ("met" if bp / t <= JAX_TARGET else "MISSED")
            print(f"{m:8} {t:8.2f} {t / bp:6.2f} {'':>9} {'':>6}  {note}")
            continue
        e = statistics.median(est_times[m])
        target = f"<= {TARGETS[m]}x " + ("met" if e / bp_est <= TARGETS[m] else "MISSED") if m in TARGETS else ""
        print(f"{m:8} {t:8.2f} {t / bp:6.2f} {e:9.2f} {e / bp_est:6.2f}  {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
