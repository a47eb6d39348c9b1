"""Step-time benchmark of the Ren et al. rules on one LocalMixer, in one run.

    python -m benchmarks.ren2023.bench                       # M/8/16, CIFAR-10 shapes, batch 128
    python -m benchmarks.ren2023.bench --channels 128 --groups 16   # narrowed, quicker

Every method's step (gradient estimate + SGD update, jit-compiled, warm-up excluded) is timed in
interleaved rounds so machine drift hits all alike; the median over rounds of the mean step time is
printed with the ratio to BP and to LG-BP. Then the fused vs naive replicated loss (Algorithm 1)
inside an LG-FG-A step: step time and XLA's compiled memory (temporary buffers).
"""

from __future__ import annotations

import argparse
import statistics
import time

DEFAULT_METHODS = ("BP", "LG-BP", "FG-W", "FG-A", "LG-FG-A")


def _step_fn(method, arch, loss_impl="fused", lr=1e-3):
    import jax

    from .rules import make_grad_fn

    grad_fn = make_grad_fn(method, arch, loss_impl=loss_impl)

    def step(params, feedback, batch, key):
        grads, aux = grad_fn(params, feedback, batch, key)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads), aux["loss"]

    return jax.jit(step)


def _bytes(n):
    return f"{n / 2**20:8.1f} MiB"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ren2023.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="M/8/16", help="a Table 2 arch (default M/8/16)")
    p.add_argument("--channels", type=int, help="narrow the arch: channels")
    p.add_argument("--groups", type=int, help="narrow the arch: groups")
    p.add_argument("--blocks", type=int, help="narrow the arch: blocks")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="steps per method per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    p.add_argument("--no-fused-vs-naive", action="store_true")
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from .models import TABLE2, Arch, init_params
    from .rules import init_feedback
    from .training import describe_device

    spec = {k: v for k, v in TABLE2[args.arch].items() if k != "published"}
    for key, value in (("channels", args.channels), ("groups", args.groups), ("num_blocks", args.blocks)):
        if value:
            spec[key] = value
    arch = Arch(**spec)
    params = init_params(arch, 0)
    params["classifier"]["w"] = 0.01 * jnp.ones_like(params["classifier"]["w"])
    x = jax.random.normal(jax.random.key(1), (args.batch, arch.P, arch.patch_dim))
    y = jax.nn.one_hot(jnp.arange(args.batch) % arch.n_classes, arch.n_classes)
    batch = {"x": x, "y": y, "x2": None}
    steps = {m: _step_fn(m, arch) for m in args.methods}
    fbs = {m: init_feedback(m, arch, 1) for m in args.methods}
    for m, fn in steps.items():  # compile + warm up
        jax.block_until_ready(fn(params, fbs[m], batch, jax.random.key(0)))
        jax.block_until_ready(fn(params, fbs[m], batch, jax.random.key(1)))

    times = {m: [] for m in steps}
    for r in range(args.rounds):
        for m, fn in steps.items():
            t0 = time.perf_counter()
            for i in range(args.steps):
                out = fn(params, fbs[m], batch, jax.random.key(100 * r + i))
            jax.block_until_ready(out)
            times[m].append((time.perf_counter() - t0) / args.steps)
    med = {m: statistics.median(t) for m, t in times.items()}
    print(f"step time, LocalMixer {args.arch} (blocks {arch.num_blocks}, patches {arch.P}, channels "
          f"{arch.channels}, groups {arch.groups}), batch {args.batch}, {describe_device()}, jax {jax.__version__}")
    print(f"{'method':9s} {'ms/step':>8s} {'x BP':>6s} {'x LG-BP':>8s}")
    for m in steps:
        bp = med.get("BP")
        lg = med.get("LG-BP")
        print(f"{m:9s} {1e3 * med[m]:8.2f} {med[m] / bp if bp else float('nan'):6.2f} "
              f"{med[m] / lg if lg else float('nan'):8.2f}")

    if not args.no_fused_vs_naive:
        print("\nreplicated loss inside an LG-FG-A step: fused (Algorithm 1) vs naive (Eqs. 4-5)")
        print(f"{'impl':6s} {'ms/step':>8s} {'temp memory':>14s} {'total memory':>14s}")
        for impl in ("fused", "naive"):
            fn = _step_fn("LG-FG-A", arch, loss_impl=impl)
            compiled = fn.lower(params, None, batch, jax.random.key(0)).compile()
            mem = compiled.memory_analysis()
            jax.block_until_ready(fn(params, None, batch, jax.random.key(0)))
            ts = []
            for r in range(args.rounds):
                t0 = time.perf_counter()
                for i in range(args.steps):
                    out = fn(params, None, batch, jax.random.key(i))
                jax.block_until_ready(out)
                ts.append((time.perf_counter() - t0) / args.steps)
            temp = getattr(mem, "temp_size_in_bytes", 0) if mem is not None else 0
            total = temp + sum(getattr(mem, a, 0) for a in ("argument_size_in_bytes", "output_size_in_bytes")) \
                if mem is not None else 0
            print(f"{impl:6s} {1e3 * statistics.median(ts):8.2f} {_bytes(temp):>14s} {_bytes(total):>14s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
