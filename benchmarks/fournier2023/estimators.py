"""Projection of a Gradient Target on a Gradient Guess (Fournier et al. 2023, Section 3), and the
per-sample weight gradients of the weight-space insertion point.

Every estimator works on per-sample rows: ``target`` and ``guess`` are [B, D] (one row per example;
D = a block output's size in activity space, a parameter tensor's size in weight space). A target
row is example i's share of the batch-mean loss gradient, so the rows of an exact estimate sum to
the batch gradient.

- ``project_on_guess`` (Eqs. 1, 4-5, authors' estimators): row i -> (t_i . g_i) / (||g_i||^2 + eps) g_i,
  i.e. the target projected on the normalised guess G = g/||g|| (Section 3.1, Local Guesses);
  eps = 1e-16 as in the authors' code (their ``--eps_norm`` flag is unused; notes).
- ``project_random``: row i -> (t_i . v_i) v_i with v_i Gaussian or Rademacher. Section 3.1 claims
  this is unbiased because E[v v^T] = I, and it is. The authors' weight-space code divides by
  ||v_i||^2 (notes, "Gaps": biased, a 1/D shrinkage); we implement the paper's unbiased form in
  both spaces.
- ``project_span`` (Table 6): every target row projected on the span of all B guess rows (the
  least-squares fit t_i ~ sum_k a_ik g_k), computed with a pseudo-inverse.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-16
RANDOM_GUESSES = ("gaussian", "rademacher")


def rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def directional(target: torch.Tensor, guess: torch.Tensor) -> torch.Tensor:
    """Per-sample directional derivatives t_i . g_i, shape [B]."""
    return (rows(target) * rows(guess)).sum(1)


def _per_row(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return scale.view(-1, *([1] * (like.dim() - 1)))


def project_on_guess(target: torch.Tensor, guess: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(t_i . g_i) / (||g_i||^2 + eps) g_i for every example i (same shape as guess)."""
    coef = directional(target, guess) / (rows(guess).pow(2).sum(1) + eps)
    return _per_row(coef, guess) * guess


def project_random(target: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(t_i . v_i) v_i: unbiased for E[v v^T] = I (Gaussian and Rademacher draws)."""
    return _per_row(directional(target, v), v) * v


def project_span(target: torch.Tensor, guess: torch.Tensor) -> torch.Tensor:
    """Each target row projected on span{g_1..g_B}: G^T pinv(G^T) t_i, for all rows at once."""
    g, t = rows(guess), rows(target)
    # Least squares in the small B x B space: coefficients A = t pinv(g) minimise ||A g - t||.
    coef = t @ torch.linalg.pinv(g)  # [B, B]
    return (coef @ g).view_as(target)


def draw_random(kind: str, shape, device, dtype=torch.float32) -> torch.Tensor:
    """A zero-mean, unit-covariance guess: N(0, I) or Rademacher (+-1 with probability 1/2)."""
    if kind == "gaussian":
        return torch.randn(shape, device=device, dtype=dtype)
    if kind == "rademacher":
        return torch.randint(0, 2, shape, device=device).to(dtype).mul_(2).sub_(1)
    raise ValueError(f"unknown random guess {kind!r}")


def estimate(target: torch.Tensor, guess: torch.Tensor, guess_kind: str, projection: str) -> torch.Tensor:
    """Per-sample estimate rows [B, ...] of the target from the guess (sum them for the batch)."""
    if projection == "span":
        return project_span(target, guess)
    if guess_kind in RANDOM_GUESSES:
        return project_random(target, guess)
    return project_on_guess(target, guess)


# ---------------------------------------------------------------------------------------------
# Per-sample weight gradients (weight-space insertion, Eq. 4). Example i's share of a layer's batch
# gradient is built from its input a_i and the batch loss gradient delta_i at its output; batch
# norm couples examples, and delta_i carries that coupling, so the shares sum to the batch gradient.


def conv_per_sample(conv: nn.Conv2d, a: torch.Tensor, delta: torch.Tensor) -> dict[str, torch.Tensor]:
    """{'weight': [B, *W.shape], 'bias': [B, C_out]} for a groups=1 convolution."""
    cols = F.unfold(a, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # [B, Ci*k*k, P]
    w = torch.einsum("bop,bip->boi", delta.flatten(2), cols).reshape(a.shape[0], *conv.weight.shape)
    out = {"weight": w}
    if conv.bias is not None:
        out["bias"] = delta.sum((2, 3))
    return out


def bn_per_sample(bn: nn.BatchNorm2d, a: torch.Tensor, delta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Shares of an affine BN2d in training mode: gamma <- sum_p delta * x_hat, beta <- sum_p delta."""
    mean = a.mean((0, 2, 3), keepdim=True)
    var = a.var((0, 2, 3), unbiased=False, keepdim=True)
    x_hat = (a - mean) * torch.rsqrt(var + bn.eps)
    return {"weight": (delta * x_hat).sum((2, 3)), "bias": delta.sum((2, 3))}


class LayerRecorder:
    """Records (module, input, output) of every Conv2d / BatchNorm2d of a module while enabled, so a
    block's layer outputs can be asked for their gradients and its per-sample shares rebuilt."""

    def __init__(self, module: nn.Module):
        self.layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        for m in self.layers:
            if isinstance(m, nn.Conv2d) and m.groups != 1:
                raise ValueError("per-sample gradients need groups=1 convolutions")
            if isinstance(m, nn.BatchNorm2d) and not m.affine:
                raise ValueError("per-sample gradients expect affine batch norm")
        self.records: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        self.enabled = False
        self._handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module, inputs, output):
        if self.enabled and module.training:
            self.records.append((module, inputs[0], output))

    def start(self):
        self.records, self.enabled = [], True

    def stop(self):
        self.enabled = False
        return self.records

    def remove(self):
        for h in self._handles:
            h.remove()


def per_sample_shares(records, deltas) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(parameter, per-sample share [B, *shape]), ...] for the recorded layers of one block."""
    out = []
    for (module, a, _), delta in zip(records, deltas):
        fn = conv_per_sample if isinstance(module, nn.Conv2d) else bn_per_sample
        for name, share in fn(module, a.detach(), delta).items():
            out.append((getattr(module, name), share))
    return out
