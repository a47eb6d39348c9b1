"""Ren et al. (2023) Table 1 / Propositions 3-4, checked by Monte Carlo (issue 7).

One linear layer a = W x (fan-in p, fan-out q) with loss 0.5 ||a - t||^2 and data x ~ N(mu, I),
t ~ N(0, I). V is the element-wise average variance over data of the per-example gradient, S the
element-wise average squared mean gradient. The element-wise average variance of the estimator
over data batches of size N and perturbations is, exactly:

    weight,   shared:       (pq+2)/N V + (pq+1) S      independent: (pq+2)/N V + (pq+1)/N S
    activity, shared:        (q+2)/N V +  (q+1) S      independent:  (q+2)/N V +  (q+1)/N S

Directional derivatives are forward-mode (torch.func.jvp), vectorised over examples and trials.
"""

import pytest
import torch
from torch.func import jvp, vmap

P, Q = 3, 2
TRIALS = 120000  # 4 standard errors ~ 7% of the variance: off-by-one coefficients show


def setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(Q, P, generator=g, dtype=torch.float64)
    mu = torch.full((P,), 0.8, dtype=torch.float64)
    return w, mu, g


def per_example_grad(w, x, t):
    return (x @ w.T - t)[..., :, None] * x[..., None, :]  # dL/dW = (Wx - t) x^T


def data(mu, n, g, *lead):
    x = mu + torch.randn(*lead, n, P, generator=g, dtype=torch.float64)
    t = torch.randn(*lead, n, Q, generator=g, dtype=torch.float64)
    return x, t


def v_and_s(w, mu, g):
    x, t = data(mu, 2_000_000, g)
    grads = per_example_grad(w, x, t)
    return grads.var(0).mean().item(), (grads.mean(0) ** 2).mean().item()


def loss(w, x, t):
    return 0.5 * ((w @ x - t) ** 2).sum()


def weight_estimates(w, x, t, v):
    """x, t: [trials, N, ...]; v: [trials, N, Q, P] (independent) or broadcast copies (shared)."""
    d = vmap(vmap(lambda xx, tt, vv: jvp(lambda ww: loss(ww, xx, tt), (w,), (vv,))[1]))(x, t, v)
    return (d[..., None, None] * v).mean(1)


def activity_estimates(w, x, t, u):
    a = x @ w.T
    d = vmap(vmap(lambda aa, tt, uu: jvp(lambda z: 0.5 * ((z - tt) ** 2).sum(), (aa,), (uu,))[1]))(a, t, u)
    return (d[..., None, None] * u[..., :, None] * x[..., None, :]).mean(1)  # d u x^T: local chain


EXPECTED = {
    ("weight", "shared"): lambda n, V, S: (P * Q + 2) / n * V + (P * Q + 1) * S,
    ("weight", "independent"): lambda n, V, S: (P * Q + 2) / n * V + (P * Q + 1) / n * S,
    ("activity", "shared"): lambda n, V, S: (Q + 2) / n * V + (Q + 1) * S,
    ("activity", "independent"): lambda n, V, S: (Q + 2) / n * V + (Q + 1) / n * S,
}


@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("kind,sharing", list(EXPECTED))
def test_ren_table1_variance(kind, sharing, n):
    w, mu, g = setup()
    V, S = v_and_s(w, mu, g)
    x, t = data(mu, n, g, TRIALS)
    shape = (Q, P) if kind == "weight" else (Q,)
    if sharing == "shared":
        noise = torch.randn(TRIALS, 1, *shape, generator=g, dtype=torch.float64).expand(TRIALS, n, *shape)
    else:
        noise = torch.randn(TRIALS, n, *shape, generator=g, dtype=torch.float64)
    est = (weight_estimates if kind == "weight" else activity_estimates)(w, x, t, noise)
    # Unbiased: the mean estimate is the mean gradient.
    true_mean = per_example_grad(w, *data(mu, 2_000_000, g)).mean(0)
    assert torch.allclose(est.mean(0), true_mean, atol=6 * (est.var(0) / TRIALS).sqrt().max().item())
    # Element-wise average variance vs Table 1, within 4 Monte-Carlo standard errors.
    per_trial = ((est - est.mean(0)) ** 2).mean((1, 2))
    measured, se = per_trial.mean().item(), per_trial.std().item() / TRIALS ** 0.5
    expected = EXPECTED[(kind, sharing)](n, V, S)
    assert abs(measured - expected) < 4 * se + 0.01 * expected, (measured, expected, se)

