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
- ``project_batch`` / ``project_batch_random`` (variant ``per-batch``): one projection per parameter
  tensor per batch, of the batch gradient T = sum_i t_i on the batch guess G = sum_i g_i (A.3: "we
  store the (batch-wise) weight gradients after both target and guess backpropagation, and compute
  weight-wise the projection"; Eq. 4; the authors' ``avg-weight-fast`` algorithm): (T.G)/(||G||^2 +
  eps) G, and (T.v) v for one random draw v per tensor.
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


def project_batch(target: torch.Tensor, guess: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(T.G) / (||G||^2 + eps) G for whole tensors (one batch gradient each, not per-sample rows)."""
    return (target * guess).sum() / (guess.pow(2).sum() + eps) * guess


def project_batch_random(target: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(T.v) v for one draw v of the tensor's shape: unbiased, as ``project_random`` per sample."""
    return (target * v).sum() * v


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


def estimate(target: torch.Tensor, guess: torch.Tensor, guess_kind: str, projection: str,
             normalised_random: bool = False) -> torch.Tensor:
    """Per-sample estimate rows [B, ...] of the target from the guess (sum them for the batch).
    ``normalised_random``: a random guess is divided by its squared norm like any other guess,
    (t_i.v_i) / (||v_i||^2 + eps) v_i, as the authors' weight-space code does (variant ``code``)."""
    if projection == "span":
        return project_span(target, guess)
    if guess_kind in RANDOM_GUESSES and not normalised_random:
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


# ---------------------------------------------------------------------------------------------
# The same weight-space projection without materialising what it need not (the training path).
# ``per_sample_shares`` + ``project_on_guess`` build B copies of every weight tensor for the target
# and the guess, multiply, and sum. Only three things are needed: the per-sample dot t_i.g_i, the
# per-sample norm ||g_i||^2, and sum_i c_i g_i with c_i = t_i.g_i / (||g_i||^2 + eps). The last is
# the layer's ordinary weight gradient for output gradients c_i * delta_g_i (torch's own conv
# weight-gradient kernel), no per-sample tensor. The dots and norms come either from per-sample
# gradients (one unfold shared by target and guess) or, where a layer has few output positions P,
# from P x P Gram matrices: t_i.g_i = sum_{p,q} (dt_p . dg_q)(x_p . x_q). tests/test_fournier_engine.py
# checks both paths against per_sample_shares + project_on_guess.


def _bdot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of [B, ...] tensors without a [B, ...] temporary."""
    b = u.shape[0]
    return torch.bmm(u.reshape(b, 1, -1), v.reshape(b, -1, 1)).view(b)


def _use_gram(n_out: int, n_in: int, positions: int) -> bool:
    """Gram matrices cost P^2 (2 O + K) a sample against 2 O K P for two per-sample gradients."""
    return positions * (2 * n_out + n_in) < 2 * n_out * n_in


def conv_projected(conv: nn.Conv2d, a: torch.Tensor, t_delta: torch.Tensor, g_delta: torch.Tensor,
                   eps: float = EPS, gram: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_i c_i g_i as the weight's gradient, dots t_i.g_i [B]) for a bias-free groups=1 conv."""
    if conv.bias is not None:
        raise ValueError("conv_projected handles bias-free convolutions (the ResNet's)")
    b = a.shape[0]
    cols = F.unfold(a, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # [B, K, P]
    dt, dg = t_delta.flatten(2), g_delta.flatten(2)  # [B, O, P]
    n_out, n_in, positions = dg.shape[1], cols.shape[1], cols.shape[2]
    if gram if gram is not None else _use_gram(n_out, n_in, positions):
        xx = torch.bmm(cols.transpose(1, 2), cols)  # [B, P, P]
        dots = _bdot(torch.bmm(dt.transpose(1, 2), dg), xx)
        norms = _bdot(torch.bmm(dg.transpose(1, 2), dg), xx)
    else:
        cols_t = cols.transpose(1, 2)
        gs = torch.bmm(dg, cols_t)  # [B, O, K] per-sample guess gradients
        dots = _bdot(torch.bmm(dt, cols_t), gs)
        norms = _bdot(gs, gs)
    coef = dots / (norms + eps)
    # sum_i c_i g_i: the convolution's own weight-gradient kernel on the rescaled guess deltas.
    grad = torch.nn.grad.conv2d_weight(a, conv.weight.shape, g_delta * coef.view(b, 1, 1, 1),
                                       conv.stride, conv.padding, conv.dilation, conv.groups)
    return grad, dots


def bn_projected(bn: nn.BatchNorm2d, a: torch.Tensor, t_delta: torch.Tensor, g_delta: torch.Tensor,
                 eps: float = EPS) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{'weight' | 'bias': (sum_i c_i g_i, dots [B])} for an affine BN2d in training mode."""
    mean = a.mean((0, 2, 3), keepdim=True)
    var = a.var((0, 2, 3), unbiased=False, keepdim=True)
    x_hat = (a - mean) * torch.rsqrt(var + bn.eps)
    out = {}
    for name, t, g in (("weight", (t_delta * x_hat).sum((2, 3)), (g_delta * x_hat).sum((2, 3))),
                       ("bias", t_delta.sum((2, 3)), g_delta.sum((2, 3)))):
        dots = (t * g).sum(1)
        out[name] = ((dots / (g.pow(2).sum(1) + eps)) @ g, dots)
    return out


def projected_on_guess(records, t_deltas, g_deltas, eps: float = EPS) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """[(parameter, sum_i c_i g_i, dots [B]), ...] for the recorded layers of one block: what
    ``per_sample_shares`` and ``project_on_guess`` give, summed over the batch."""
    out = []
    for (module, a, _), dt, dg in zip(records, t_deltas, g_deltas):
        a = a.detach()
        if isinstance(module, nn.Conv2d):
            grad, dots = conv_projected(module, a, dt, dg, eps)
            out.append((module.weight, grad, dots))
        else:
            for name, (grad, dots) in bn_projected(module, a, dt, dg, eps).items():
                out.append((getattr(module, name), grad, dots))
    return out
