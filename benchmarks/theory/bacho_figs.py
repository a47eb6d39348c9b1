"""Bacho & Chu (2024), Figs. 5 and 6: how the variance of gradient estimates scales, on the
bacho2024 engine's own estimators.

Fig. 5: FDFA's estimate of the hidden weights as a function of the feedback learning rate alpha.
Prop. 2: with the feedback matrix converged to the output weights (B = W2) and no perturbation of
the output layer, Var[g_ij | x] = alpha^2 Var[(c.u) u_i] (dy_i/dw_ij)^2 = alpha^2 (||c||^2 + c_i^2)
relu'(a_i)^2 x_j^2, with c = W2^T e and e = dL/dlogits: a log-log slope of 2. Each sample sets
B = W2, then runs one engine FDFA step (Alg. 1: B moves by alpha towards d u^T, then projects e).

Fig. 6: FG-W and FG-A estimates of the hidden weights as functions of the inputs n0 (MNIST pixels
duplicated, as the caption says) and hidden neurons n1. Props. 5-6 (Lemma 4, per example):
FG-W Var[g_ij] = g_ij^2 + ||g||^2 (g: every perturbed parameter; the engine perturbs all of them),
FG-A Var[g_ij] = (G_i^2 + ||G||^2) (dy_i/dw_ij)^2 (G: dL/dy of every perturbed neuron, the output
included). Averaged over the weights these grow like n1 n0 (FG-W) and n1 (FG-A) when every
per-element derivative stays of order one as the net widens: the propositions' assumption
("in the limit of large n1 and n0"). With the paper's uniform Kaiming init of the output layer,
dL/dy_i shrinks like 1/sqrt(n1) and the n1-dependence disappears; so the spec runs both output
inits: "fixed" (output weights U(+-1/sqrt(64)) at every width) and "kaiming" (the paper's Appendix A).

Every point: the variance over ``samples`` perturbations of each of ``examples`` MNIST training
images (batch of one), averaged over the hidden weights and the images (the caption's "10
iterations of the MNIST dataset" is read as 10 images; the paper gives no more detail). The theory
line is the exact formula above, evaluated with backprop gradients of the same net and image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .fit import summary

OUT_SCALE_WIDTH = 1  # "fixed" output init: U(+-1) whatever n1 is
N_CLASSES = 10


def _images(config: dict, data_root):
    from benchmarks.data import load

    split = load("mnist", config["data_source"], data_root, n_train=config["examples"], n_test=10,
                 data_seed=config["seed"])
    x = (torch.from_numpy(split.x_train).float() / 255.0 - 0.5) / 0.5  # the engine's normalisation
    return x.flatten(1), torch.from_numpy(split.y_train).long(), split


def _net(n0: int, n1: int, out_init: str, seed: int):
    from benchmarks.bacho2024.models import LayeredNet, Linear

    torch.manual_seed(seed)
    net = LayeredNet([nn.Sequential(Linear(n0, n1), nn.ReLU())], Linear(n1, N_CLASSES))
    if out_init == "fixed":
        bound = 1.0 / math.sqrt(OUT_SCALE_WIDTH)
        with torch.no_grad():
            net.out.weight.uniform_(-bound, bound)
    return net


def _theory(method: str, net, x, y, alpha: float) -> float:
    """Mean over the hidden weights of the exact per-example variance (see the module docstring)."""
    with torch.enable_grad():
        return _theory_terms(method, net, x, y, alpha)


def _theory_terms(method, net, x, y, alpha):
    lin = net.blocks[0][0]
    a = lin(x)
    h = torch.relu(a)
    h.retain_grad()
    logits = net.out(h)
    logits.retain_grad()
    net.zero_grad()
    F.cross_entropy(logits, y).backward()
    x2 = (x.double() ** 2)[0]  # [n0]
    live = (a > 0).detach().double()[0]  # relu'(a_i)
    if method == "FG-W":
        g_all = torch.cat([p.grad.flatten() for p in net.parameters()]).double()
        return float((lin.weight.grad.double() ** 2).mean() + (g_all ** 2).sum())
    if method == "FG-A":
        G_hidden = h.grad.double()[0]
        G2 = (G_hidden ** 2).sum() + (logits.grad.double() ** 2).sum()
        per = (G_hidden ** 2 + G2) * live  # relu'^2 = relu'
        return float((per[:, None] * x2[None, :]).mean())
    # FDFA with B = W2: c = W2^T e
    c = (logits.grad.double() @ net.out.weight.detach().double())[0]
    per = alpha ** 2 * ((c ** 2).sum() + c ** 2) * live
    return float((per[:, None] * x2[None, :]).mean())


def _empirical(method: str, net, x, y, alpha: float, samples: int) -> float:
    from benchmarks.bacho2024.rules import make_rule

    rule = make_rule(method, net, N_CLASSES, x, {})
    if method == "FDFA":
        rule.feedback_opt = torch.optim.SGD(rule.feedback_params(), lr=alpha)
    w1 = net.blocks[0][0].weight
    acc = torch.zeros(w1.numel(), dtype=torch.float64)
    acc2 = torch.zeros_like(acc)
    first = None
    for _ in range(samples):
        if method == "FDFA":
            with torch.no_grad():
                rule.B[0].copy_(net.out.weight)  # converged feedback (Prop. 2's assumption)
        for p in net.parameters():
            p.grad = None
        rule.step(x, y)
        gvec = w1.grad.detach().flatten().double()
        if first is None:
            first = gvec.clone()  # shift for a numerically stable variance
        gvec = gvec - first
        acc += gvec
        acc2 += gvec ** 2
    mean = acc / samples
    var = (acc2 / samples - mean ** 2) * samples / (samples - 1)
    return float(var.mean())


def run(config: dict, data_root=None, progress=None) -> dict:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    xs_all, ys_all, split = _images(config, data_root)
    method, sweep, xs = config["method"], config["sweep"], config["values"]
    emp, theo = [], []
    g = torch.Generator().manual_seed(config["seed"])
    for i, value in enumerate(xs):
        n0_mult = value if sweep == "n0" else 1
        n1 = value if sweep == "n1" else config["n1"]
        alpha = value if sweep == "alpha" else config["alpha"]
        n0 = xs_all.shape[1] * n0_mult
        # One network per shape: the alpha sweep keeps the same net at every alpha.
        net = _net(n0, n1, config["out_init"], seed=100_003 * config["seed"] + 7919 * n0 + n1)
        e_sum = t_sum = 0.0
        for k in range(xs_all.shape[0]):
            x = xs_all[k:k + 1].repeat(1, n0_mult)  # duplicated pixels
            y = ys_all[k:k + 1]
            torch.manual_seed(int(torch.randint(0, 2 ** 31 - 1, (1,), generator=g)))
            e_sum += _empirical(method, net, x, y, alpha, config["samples"])
            t_sum += _theory(method, net, x, y, alpha)
        emp.append(e_sum / xs_all.shape[0])
        theo.append(t_sum / xs_all.shape[0])
        if progress:
            progress(epoch=i + 1, epochs=len(xs), **{sweep: value, "var": emp[-1], "theory": theo[-1]})
    xs_plot = [v * 784 for v in xs] if sweep == "n0" else xs
    out = summary(xs_plot, emp, theo)
    return out, split
