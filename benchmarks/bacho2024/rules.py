"""The seven learning rules of Bacho & Chu (2024): BP, FG-W, FG-A, LG-FG-A, DFA, DKP, FDFA.

Each rule turns a batch into gradients in ``.grad`` of the forward weights (and, for DKP and FDFA,
updates its feedback matrices). Notation follows the paper: y_l is the output of hidden layer l
(post-ReLU), L the output layer, e = dL/dy_L the output error of the batch-mean loss.

Directional derivatives are forward-mode AD (dual tensors of ``torch.autograd.forward_ad``): no backward pass crosses a layer. What
does use ``backward`` is each layer's *local* gradient dy_l/dW_l (paper Eq. 5 and 14: "computed by
neurons with locally-available information"): every block sees a detached input, so autograd
never leaves the block.

Fidelity choices (paper first, then the authors' code; see IMPLEMENTATION_NOTES):
- FG-W (Eq. 2-3): one N(0,1) tangent for every parameter, biases and output layer included, shared
  by the batch; g = d * v.
- FG-A (Eq. 4-5, Alg. 3): N(0,1) perturbation of every layer's activation y_l, output logits
  included (Eq. 4 sums l = 1..L), independent per example; g(y_l) = d_b * u_l, then the local chain.
  ``fga_output=exact`` follows Algorithm 3 / Props. 5-6 instead: logits unperturbed, output exact.
- LG-FG-A (Appendix A): a linear classifier after each hidden layer l < L-1; layer l's FG-A
  estimate uses its own local loss; heads and the output layer learn their exact local gradient;
  no gradient crosses blocks.
- DFA (Eq. 6): g(y_l) = e B_l, B_l fixed Kaiming-uniform; output layer exact.
- DKP: B_l learns with Adam on grad e^T y_l (authors' code), starting from 0.
- FDFA (Eq. 7-14, Alg. 1): hidden activations perturbed, output not; the logits' tangent d sums
  all layers' perturbations (Eq. 7); B_l is updated first (Alg. 1 line 22) with Adam on
  grad B_l - mean_b(d_b u_l,b^T) (Eq. 10, Appendix A), then g(y_l) = e B_l
  (``fdfa_feedback_update=after``: the code's order, B_l updated after it projected the error).
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch.func import functional_call

from .models import LayeredNet, feedback_matrices, hidden_sizes


class Rule:
    """A learning rule bound to one network: ``step(x, y)`` sets grads and returns the batch loss."""

    def __init__(self, net: LayeredNet, n_classes: int, example: torch.Tensor, config: dict):
        self.net = net
        self.n_classes = n_classes

    def feedback_params(self) -> list[torch.Tensor]:
        return []

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        raise NotImplementedError


class BP(Rule):
    def step(self, x, y):
        loss = F.cross_entropy(self.net(x), y)
        loss.backward()
        return loss.detach()


class FGW(Rule):
    """Weight-perturbed forward gradient: one JVP of the loss along N(0,1) weight tangents."""

    def __init__(self, net, n_classes, example, config):
        super().__init__(net, n_classes, example, config)
        self.names = [n for n, _ in net.named_parameters()]
        params = [p for _, p in net.named_parameters()]
        n = sum(p.numel() for p in params)
        dev = params[0].device
        # One flat buffer for tangents and one for grads: a single RNG call and a single multiply
        # per step instead of one per tensor (sampling the tangents is the dominant cost on CPU).
        self.flat_v = torch.empty(n, device=dev)
        self.flat_g = torch.empty(n, device=dev)
        # The weights move into a flat buffer of the same length too: make_dual takes a tangent as
        # it is only when it has its primal's sizes, strides, offset and storage size, and otherwise
        # zero-fills and copies a new one (8 copies of 1.9 M floats a step, ~12% of it). Weights
        # whose strides are not row-major (channels-last convs) keep their storage and their copy.
        flat_p = torch.empty(n, device=dev, dtype=params[0].dtype)
        self.v, self.g, self.grads, off = [], [], [], 0
        for p in params:
            k = p.numel()
            self.v.append(self.flat_v[off:off + k].view_as(p))
            self.g.append(self.flat_g[off:off + k].view_as(p))
            if p.stride() == self.v[-1].stride():
                flat_p[off:off + k].copy_(p.detach().reshape(-1))
                p.data = flat_p[off:off + k].view_as(p)
                self.grads.append(self.g[-1])
            else:
                # A gradient must have its weight's strides: the fused optimisers pair a weight's and
                # its gradient's elements by memory position, so a row-major gradient on a
                # channels-last conv weight would be applied to the wrong elements, silently on CPU.
                self.grads.append(torch.empty_like(p, memory_format=torch.preserve_format))
            off += k
        self.params = params

    def step(self, x, y):
        self.flat_v.normal_()
        # Dual tensors rather than torch.func.jvp: batch norm updates its running statistics in
        # place, which functorch transforms forbid. No autograd graph is needed at all.
        with torch.no_grad(), fwAD.dual_level():
            duals = {n: fwAD.make_dual(p, v) for n, p, v in zip(self.names, self.params, self.v)}
            loss, d = fwAD.unpack_dual(F.cross_entropy(functional_call(self.net, duals, (x,)), y))
            torch.mul(self.flat_v, d, out=self.flat_g)
        for p, g, grad in zip(self.params, self.g, self.grads):
            if grad is not g:
                grad.copy_(g)  # same values, the weight's layout
            p.grad = grad
        return loss


def _dual_input(h):
    """A block input cut from the backward graph but still carrying its forward tangent."""
    primal, tangent = fwAD.unpack_dual(h)
    return primal.detach() if tangent is None else fwAD.make_dual(primal.detach(), tangent)


def _perturb(h, u):
    """Add the perturbation u to h's tangent (h's value is unchanged); returns (dual, primal)."""
    primal, tangent = fwAD.unpack_dual(h)
    return fwAD.make_dual(primal, u if tangent is None else tangent + u), primal


def _gaussian_like(t: torch.Tensor) -> torch.Tensor:
    """N(0,1) noise of t's shape, drawn in logical (row-major) order whatever t's memory format:
    conv nets run channels-last (training.memory_format), and randn_like would then give each
    neuron another draw of the same generator stream than the row-major net does."""
    return _stored_like(torch.randn(t.shape, dtype=t.dtype, device=t.device), t)


def _stored_like(g: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """g (t's shape) in t's memory layout: elementwise ops between a channels-last tensor and a
    row-major one take a slow strided path (a 1M-element ReLU backward: 3.5 ms instead of 0.7)."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return g.contiguous(memory_format=torch.channels_last)
    return g


def _per_example(d: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return d.view(-1, *([1] * (like.dim() - 1)))


def _perturbed_forward(net: LayeredNet, x, perturb_output: bool):
    """Forward pass with N(0,1) tangents added to every hidden activation y_l (and the logits if
    ``perturb_output``), inside an open dual level. Returns (primals of y_l with their local
    graphs, perturbations, dual logits, primal logits with the output layer's graph)."""
    ys, us, h = [], [], x
    for blk in net.blocks:
        z = blk(_dual_input(h))
        u = _gaussian_like(fwAD.unpack_dual(z).primal)
        h, primal = _perturb(z, u)
        ys.append(primal)
        us.append(u)
    logits = net.out(_dual_input(h))
    out_primal = fwAD.unpack_dual(logits).primal
    if perturb_output:
        u_out = _gaussian_like(out_primal)
        logits, _ = _perturb(logits, u_out)
        us.append(u_out)
    return ys, us, logits, out_primal


class FGA(Rule):
    """Activity-perturbed forward gradient (global loss), all layers perturbed in one dual pass.

    ``fga_output`` (config): ``perturbed`` (default) perturbs the logits too and trains the output
    layer from its estimate (Eq. 4 sums l = 1..L); ``exact`` leaves the logits unperturbed and gives
    the output layer its exact gradient (Algorithm 3 lines 13-15, "if l < L"; Props. 5-6 take u = 0
    at the output)."""

    def __init__(self, net, n_classes, example, config):
        super().__init__(net, n_classes, example, config)
        self.perturb_output = config.get("fga_output", "perturbed") == "perturbed"

    def directional(self, x, y):
        """(per-example losses, per-example directional derivatives d_b, y_l + logits primals, u_l)."""
        with fwAD.dual_level():
            ys, us, logits, out_primal = _perturbed_forward(self.net, x, perturb_output=self.perturb_output)
            loss_vec, d = fwAD.unpack_dual(F.cross_entropy(logits, y, reduction="none"))
        return loss_vec, d.detach(), ys + [out_primal], us

    def step(self, x, y):
        loss_vec, d, outs, us = self.directional(x, y)
        scale = d / x.shape[0]  # batch-mean loss
        grads = [_per_example(scale, u) * u for u in us]
        if not self.perturb_output:  # exact dL/dlogits of the batch-mean loss for the output layer
            grads.append(_softmax_error(outs[-1], y))
        torch.autograd.backward(outs, grads)
        return loss_vec.detach().mean()


def _softmax_error(logits, y):
    """e = dL/dlogits of the batch-mean cross-entropy, in closed form."""
    e = torch.softmax(logits.detach(), dim=1)
    e[torch.arange(y.shape[0], device=y.device), y] -= 1.0
    return e / y.shape[0]


class LGFGA(Rule):
    """Local-greedy FG-A: each hidden layer l < L-1 learns from its own linear head's loss."""

    def step(self, x, y):
        net, ys, grads = self.net, [], []
        local_losses = []
        n_heads = len(net.heads)
        with fwAD.dual_level():
            h = x
            for i, blk in enumerate(net.blocks):
                z = blk(h.detach())
                u = _gaussian_like(z)
                probe = fwAD.make_dual(z.detach(), u)  # perturbation seen only by this block's loss
                if i < n_heads:
                    lv, d = fwAD.unpack_dual(F.cross_entropy(net.heads[i](probe), y, reduction="none"))
                else:  # last hidden layer: its block ends with the output layer and the global loss
                    lv, d = fwAD.unpack_dual(F.cross_entropy(net.out(probe), y, reduction="none"))
                local_losses.append(lv.mean())  # exact gradient for the head / output layer
                ys.append(z)
                grads.append(_per_example(d.detach() / x.shape[0], u) * u)
                h = z
        loss = local_losses[-1]
        torch.autograd.backward(ys + [sum(local_losses)], grads + [None])
        return loss.detach()


class _DirectFeedback(Rule):
    """Shared machinery of DFA, DKP and FDFA: hidden layers get e B_l, the output layer e exactly."""

    feedback_init = "zeros"

    def __init__(self, net, n_classes, example, config):
        super().__init__(net, n_classes, example, config)
        sizes = hidden_sizes(net, example)
        dev = example.device
        self.B = [b.to(dev) for b in feedback_matrices(n_classes, sizes, self.feedback_init)]

    def _output_error(self, logits, y):
        return _softmax_error(logits, y)

    def _apply(self, ys, e, loss):
        """Hidden layers: local backward of e B_l; output layer: exact gradient of the loss."""
        with torch.no_grad():
            grads = [_stored_like((e @ b.detach()).view_as(yl), yl) for yl, b in zip(ys, self.B)]
        torch.autograd.backward(ys + [loss], grads + [None])

    def _local_forward(self, x):
        ys, h = [], x
        for blk in self.net.blocks:
            h = blk(h.detach())
            ys.append(h)
        return ys, self.net.out(h.detach())


class DFA(_DirectFeedback):
    feedback_init = "kaiming_uniform"

    def step(self, x, y):
        ys, logits = self._local_forward(x)
        loss = F.cross_entropy(logits, y)
        self._apply(ys, self._output_error(logits, y), loss)
        return loss.detach()


class _LearnedFeedback(_DirectFeedback):
    """Feedback matrices that start at 0 and learn with their own Adam (DKP, FDFA)."""

    def __init__(self, net, n_classes, example, config):
        super().__init__(net, n_classes, example, config)
        self.B = [b.requires_grad_(True) for b in self.B]
        self.feedback_opt = None  # set by the trainer (Adam at the feedback learning rate)

    def feedback_params(self):
        return self.B


class DKP(_LearnedFeedback):
    def step(self, x, y):
        ys, logits = self._local_forward(x)
        loss = F.cross_entropy(logits, y)
        e = self._output_error(logits, y)
        with torch.no_grad():
            grads_b = [e.t() @ yl.detach().flatten(1) for yl in ys]
        self._apply(ys, e, loss)  # with the current B_l, as the authors' code does
        for b, g in zip(self.B, grads_b):
            b.grad = g
        self.feedback_opt.step()
        return loss.detach()


class FDFA(_LearnedFeedback):
    """``fdfa_feedback_update`` (config): ``before`` (default; Alg. 1 line 22 updates B_l, then the
    error is projected through the new B_l) or ``after`` (the authors' code: the backward pass
    projects through the current B_l, then both optimisers step)."""

    def __init__(self, net, n_classes, example, config):
        super().__init__(net, n_classes, example, config)
        self.update_first = config.get("fdfa_feedback_update", "before") == "before"

    def directional(self, x):
        """(y_l primals, u_l, logits, d) where d[b] = sum_l J_l u_l is the logits' tangent (Eq. 7)."""
        with fwAD.dual_level():
            ys, us, logits, _ = _perturbed_forward(self.net, x, perturb_output=False)
            primal, d = fwAD.unpack_dual(logits)
        return ys, us, primal, d.detach()

    def step(self, x, y):
        ys, us, logits, d = self.directional(x)
        loss = F.cross_entropy(logits, y)
        e = self._output_error(logits, y)
        n = x.shape[0]
        with torch.no_grad():
            for b, u in zip(self.B, us):
                b.grad = b.detach() - d.t() @ u.flatten(1) / n  # Eq. 10, batch mean
        if self.update_first:
            self.feedback_opt.step()  # Alg. 1: B_l is updated before it projects the error
            self._apply(ys, e, loss)
        else:
            self._apply(ys, e, loss)
            self.feedback_opt.step()
        return loss.detach()


RULES = {"BP": BP, "FG-W": FGW, "FG-A": FGA, "LG-FG-A": LGFGA, "DFA": DFA, "DKP": DKP, "FDFA": FDFA}


def make_rule(method: str, net: LayeredNet, n_classes: int, example: torch.Tensor, config: dict) -> Rule:
    return RULES[method](net, n_classes, example, config)
