"""Ren et al. (2023), Appendix 10 / Fig. 8: variance of first-layer gradient estimates, simulated.

The paper's setup: a p-q-1 network (p inputs, q tanh hidden units, one linear output) with the
mean-squared-error loss; the estimator of the first layer's weight gradient is sampled 5,000 times;
the batch size N runs from 1 to 4096 (p = q = 4), then p and q run from 1 to 256 (N = 4). The
theory line applies Table 1 with the per-example gradient variance V and squared mean gradient S
measured by backprop. Table 1, element-wise averages over W1 (q x p):

    backprop        V/N
    wt perturb      (pq+2) V/N + (pq+1) S        ind wt perturb   (pq+2) V/N + (pq+1) S/N
    act perturb     (q+2)  V/N + (q+1)  S        ind act perturb  (q+2)  V/N + (q+1)  S/N

"Shared" perturbations are one draw for the whole batch; "ind" ones are one draw per example.
These hold exactly for this network, not just to leading order: a weight estimate is (g.v) v with g
the batch gradient, and an activity estimate is (delta.u) u x^T per example, whatever the layers
above are (the derivation is in tests/test_theory_ren_table1.py's docstring).

Choices the paper leaves open (Appendix 10 names only the shapes, tanh, MSE and sample counts):
inputs x ~ N(0, I_p); targets from a fixed random teacher of the same shape plus N(0, 0.1^2) noise;
student and teacher weights N(0, 1/fan_in); no biases; weight perturbation perturbs W1 only and
activity perturbation the hidden pre-activations only (the estimates of W1 that Fig. 8 plots).
Directional derivatives are forward-mode (torch.func.jvp); V and S come from per-example backprop
gradients of a separate, larger sample. float64 throughout.
"""

from __future__ import annotations

import math

import torch
from torch.func import grad, jvp, vmap

from .fit import summary

ESTIMATORS = ("backprop", "weight", "weight_ind", "activity", "activity_ind")
SWEEPS = ("N", "p", "q")
DT = torch.float64


def _net(p: int, q: int, g: torch.Generator):
    w1 = torch.randn(q, p, generator=g, dtype=DT) / math.sqrt(p)
    w2 = torch.randn(q, generator=g, dtype=DT) / math.sqrt(q)
    return w1, w2


def _loss(w1, w2, x, t):
    """One example: 0.5 (w2 . tanh(W1 x) - t)^2."""
    return 0.5 * (w2 @ torch.tanh(w1 @ x) - t) ** 2


def _loss_from_pre(a, w2, t):
    return 0.5 * (w2 @ torch.tanh(a) - t) ** 2


class Problem:
    """A student p-q-1 net and the teacher that labels its inputs."""

    def __init__(self, p: int, q: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.p, self.q = p, q
        self.teacher = _net(p, q, g)
        self.w1, self.w2 = _net(p, q, g)
        self.g = g

    def data(self, *shape):
        x = torch.randn(*shape, self.p, generator=self.g, dtype=DT)
        tw1, tw2 = self.teacher
        t = torch.tanh(x @ tw1.T) @ tw2 + 0.1 * torch.randn(*shape, generator=self.g, dtype=DT)
        return x, t

    def per_example_grads(self, x, t):
        return vmap(grad(_loss), in_dims=(None, None, 0, 0))(self.w1, self.w2, x, t)

    def v_and_s(self, n_examples: int, chunk: int = 200_000):
        """Element-averaged per-example gradient variance V and squared mean gradient S."""
        total = torch.zeros(self.q, self.p, dtype=DT)
        total_sq = torch.zeros(self.q, self.p, dtype=DT)
        done = 0
        while done < n_examples:
            m = min(chunk, n_examples - done)
            gr = self.per_example_grads(*self.data(m))
            total += gr.sum(0)
            total_sq += (gr ** 2).sum(0)
            done += m
        mean = total / n_examples
        var = total_sq / n_examples - mean ** 2
        return float(var.mean() * n_examples / (n_examples - 1)), float((mean ** 2).mean())

    def estimates(self, estimator: str, n: int, samples: int) -> torch.Tensor:
        """``samples`` independent estimates of the batch-mean W1 gradient: [samples, q, p]."""
        x, t = self.data(samples, n)
        w1, w2 = self.w1, self.w2
        if estimator == "backprop":
            return vmap(vmap(grad(_loss), in_dims=(None, None, 0, 0)), in_dims=(None, None, 0, 0))(
                w1, w2, x, t).mean(1)
        if estimator.startswith("weight"):
            shape = (samples, n, self.q, self.p) if estimator == "weight_ind" else (samples, 1, self.q, self.p)
            v = torch.randn(*shape, generator=self.g, dtype=DT).expand(samples, n, self.q, self.p)

            def directional(xx, tt, vv):  # d/de loss(W1 + e v) at e = 0, forward mode
                return jvp(lambda w: _loss(w, w2, xx, tt), (w1,), (vv,))[1]

            d = vmap(vmap(directional))(x, t, v)
            return (d[..., None, None] * v).mean(1)
        # activity: perturb the hidden pre-activations a = W1 x; local chain rule da/dW1 = x
        shape = (samples, n, self.q) if estimator == "activity_ind" else (samples, 1, self.q)
        u = torch.randn(*shape, generator=self.g, dtype=DT).expand(samples, n, self.q)
        a = x @ w1.T

        def directional_a(aa, tt, uu):
            return jvp(lambda z: _loss_from_pre(z, w2, tt), (aa,), (uu,))[1]

        d = vmap(vmap(directional_a))(a, t, u)
        return ((d[..., None] * u)[..., :, None] * x[..., None, :]).mean(1)

    def empirical_variance(self, estimator: str, n: int, samples: int) -> float:
        """Element-averaged variance of the estimator over data batches and perturbations."""
        chunk = max(1, min(samples, 4_000_000 // max(1, n * self.p * self.q)))
        parts, done = [], 0
        while done < samples:
            m = min(chunk, samples - done)
            parts.append(self.estimates(estimator, n, m))
            done += m
        est = torch.cat(parts)
        return float(est.var(0, unbiased=True).mean())


def theory_variance(estimator: str, n: int, p: int, q: int, v: float, s: float) -> float:
    """Table 1 of Ren et al. (element-wise average variance of the W1 estimate)."""
    k = {"weight": p * q, "weight_ind": p * q, "activity": q, "activity_ind": q}.get(estimator)
    if k is None:
        return v / n
    shared_s = (k + 1) * s if estimator in ("weight", "activity") else (k + 1) * s / n
    return (k + 2) * v / n + shared_s


def run(config: dict, progress=None) -> dict:
    est, sweep = config["estimator"], config["sweep"]
    base = {"N": config["N"], "p": config["p"], "q": config["q"]}
    emp, theo = [], []
    xs = config["values"]
    for i, value in enumerate(xs):
        dims = dict(base, **{sweep: value})
        # One network per shape: the batch-size sweep keeps the same net (and V, S) at every N.
        prob = Problem(dims["p"], dims["q"], seed=100_003 * config["seed"] + 1009 * dims["p"] + dims["q"])
        v, s = prob.v_and_s(config["stat_examples"])
        emp.append(prob.empirical_variance(est, dims["N"], config["samples"]))
        theo.append(theory_variance(est, dims["N"], dims["p"], dims["q"], v, s))
        if progress:
            progress(epoch=i + 1, epochs=len(xs), **{sweep: value, "var": emp[-1], "theory": theo[-1]})
    return summary(xs, emp, theo)
