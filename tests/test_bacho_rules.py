"""Bacho & Chu learning rules: forward-mode directional derivatives are exact, FG-W / FG-A / LG-FG-A
estimates are unbiased, feedback rules follow their equations, and every rule learns."""

import os

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from benchmarks.bacho2024.models import LayeredNet, Linear, build, count_params, hidden_sizes
from benchmarks.bacho2024.rules import RULES, make_rule
from benchmarks.bacho2024.config import METHODS

torch.set_num_threads(1)


def tiny_fc(method="BP", heads=False):
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Flatten(), Linear(6, 5), nn.ReLU()), nn.Sequential(Linear(5, 4), nn.ReLU())]
    hd = [nn.Sequential(nn.Flatten(), Linear(5, 3))] if heads else []
    return LayeredNet(blocks, Linear(4, 3), hd)


def tiny_cnn():
    """Conv + pool + FC: checks that local gradients through conv and pooling are right."""
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2)),
              nn.Sequential(nn.Flatten(), Linear(18, 5), nn.ReLU())]
    return LayeredNet(blocks, Linear(5, 3))


def batch(shape, n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 3, (n,), generator=g)


def true_grads(net, x, y, params):
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    return [p.grad.clone() for p in params]


def test_rules_cover_the_papers_methods():
    assert tuple(RULES) == METHODS


def test_fgw_directional_derivative_is_exact():
    net = tiny_fc()
    x, y = batch((6,))
    rule = make_rule("FG-W", net, 3, x, {})
    params = list(net.parameters())
    g = true_grads(net, x, y, params)
    torch.manual_seed(3)
    rule.step(x, y)
    d = (rule.flat_g / rule.flat_v)[0]
    assert torch.allclose(rule.flat_g, d * rule.flat_v, rtol=1e-5, atol=1e-7)
    expected = sum((gi * vi).sum() for gi, vi in zip(g, rule.v))
    assert torch.allclose(d, expected, rtol=1e-4, atol=1e-6)


def test_fgw_tangents_reach_make_dual_without_a_copy():
    """FG-W keeps row-major weights in a flat buffer laid out like its tangent buffer, so that
    make_dual takes each tangent as it is (otherwise it zero-fills and copies 1.9 M floats a step);
    channels-last conv weights keep their own storage and layout. Values are unchanged."""
    import torch.autograd.forward_ad as fwAD
    from benchmarks.bacho2024.training import setup

    for arch, fmt in (("fc", torch.contiguous_format), ("cnn", torch.channels_last)):
        cfg = {"method": "FG-W", "arch": arch, "depth": 3, "hidden": 16, "dataset": "mnist", "lr": 1e-3,
               "lr_decay": 0.95, "feedback_lr": 1e-3, "batchnorm": arch == "cnn", "cnn_pools": 1,
               "image_size": None, "dfa_zero_init": True}
        torch.manual_seed(0)
        ref = [p.detach().clone() for p in build_net(cfg, fmt).parameters()]
        torch.manual_seed(0)
        net, rule, _, _ = setup(cfg, torch.device("cpu"), 10, torch.zeros(2, 1, 28, 28), fmt=fmt)
        shared = 0
        for p, v, r in zip(rule.params, rule.v, ref):
            assert torch.equal(p, r) and p.stride() == r.stride()  # same values, same layout
            with torch.no_grad(), fwAD.dual_level():
                tangent = fwAD.unpack_dual(fwAD.make_dual(p, v)).tangent
            if p.stride() == v.stride():
                assert tangent.data_ptr() == v.data_ptr(), p.shape
                shared += 1
            else:
                assert arch == "cnn" and p.dim() == 4
        assert shared >= len(rule.params) - (2 if arch == "cnn" else 0) > 0


def build_net(cfg, fmt):
    return build(cfg).to(memory_format=fmt)


@pytest.mark.parametrize("make_net,shape", [(tiny_fc, (6,)), (tiny_cnn, (1, 8, 8))])
def test_fga_directional_derivative_is_exact(make_net, shape):
    """d_b = sum_l dL_b/dy_l . u_l (Eq. 4), output logits included, per example."""
    net = make_net()
    x, y = batch(shape)
    rule = make_rule("FG-A", net, 3, x, {})
    torch.manual_seed(5)
    _, d, _, us = rule.directional(x, y)
    # Reference by reverse mode: per-example activation gradients of the summed per-example loss.
    outs, h = [], x
    for blk in net.blocks:
        h = blk(h)
        h.retain_grad()
        outs.append(h)
    logits = net.out(h)
    logits.retain_grad()
    F.cross_entropy(logits, y, reduction="sum").backward()
    ref = sum((o.grad * u).flatten(1).sum(1) for o, u in zip(outs + [logits], us))
    assert torch.allclose(d, ref, rtol=1e-4, atol=1e-6)


def mc_samples(rule, params, x, y, k):
    """k gradient estimates, each flattened into one row."""
    rows = []
    for _ in range(k):
        for p in params:
            p.grad = None
        rule.step(x, y)
        rows.append(torch.cat([p.grad.flatten() for p in params]))
    return torch.stack(rows).double()


def assert_unbiased(samples, g, k_small=250):
    """Every coordinate's Monte-Carlo mean lies within 5 standard errors of the true gradient, and
    the error of the mean shrinks as 1/sqrt(samples) (a biased estimator would plateau)."""
    k = samples.shape[0]
    mean, se = samples.mean(0), samples.std(0) / k ** 0.5
    z = (mean - g) / se.clamp_min(1e-12)
    assert z.abs().max() < 5.0, f"max |z| = {z.abs().max():.1f}"
    err_small = (samples[:k_small].mean(0) - g).norm() / g.norm()
    err_big = (mean - g).norm() / g.norm()
    assert err_big < 0.5 * err_small, (float(err_small), float(err_big))  # ~0.25 expected at 16x


@pytest.mark.parametrize("rule_name,make_net,shape", [
    ("FG-W", tiny_fc, (6,)), ("FG-A", tiny_fc, (6,)), ("FG-A", tiny_cnn, (1, 8, 8))])
def test_forward_gradients_are_unbiased(rule_name, make_net, shape):
    net = make_net()
    x, y = batch(shape)
    rule = make_rule(rule_name, net, 3, x, {})
    params = list(net.blocks.parameters()) + list(net.out.parameters())
    g = torch.cat([t.flatten() for t in true_grads(net, x, y, params)]).double()
    torch.manual_seed(11)
    assert_unbiased(mc_samples(rule, params, x, y, 4000), g)


def test_lgfga_is_unbiased_for_its_local_loss():
    """Layer 1's LG-FG-A estimate averages to the exact gradient of its own head's loss."""
    net = tiny_fc(heads=True)
    x, y = batch((6,))
    rule = make_rule("LG-FG-A", net, 3, x, {})
    w1 = list(net.blocks[0].parameters())
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net.heads[0](net.blocks[0](x)), y).backward()
    g = [p.grad.clone() for p in w1]
    torch.manual_seed(2)
    assert_unbiased(mc_samples(rule, w1, x, y, 4000), torch.cat([t.flatten() for t in g]).double())
    # Heads and the output layer get their exact local gradient.
    net.zero_grad(set_to_none=True)
    rule.step(x, y)
    h1 = net.blocks[0](x).detach()
    ref = torch.autograd.grad(F.cross_entropy(net.heads[0](h1), y), list(net.heads[0].parameters()))
    assert all(torch.allclose(a.grad, b) for a, b in zip(net.heads[0].parameters(), ref))


def test_lgfga_weights_each_examples_perturbation_by_that_examples_own_derivative(monkeypatch):
    """g(y_l)_b = d_b u_b / N with d_b the directional derivative of example b's own local loss.
    Averaging d over the batch first is unbiased too (the cross terms vanish in expectation), so the
    unbiasedness test cannot tell the two apart: this one rebuilds the estimate from the very
    perturbations the rule drew, by reverse mode, and compares every weight gradient exactly."""
    net = tiny_fc(heads=True)
    x, y = batch((6,), n=5)
    from benchmarks.bacho2024 import rules

    drawn, real_gaussian_like = [], rules._gaussian_like

    def recorded_gaussian_like(t):
        drawn.append(real_gaussian_like(t))
        return drawn[-1]

    monkeypatch.setattr(rules, "_gaussian_like", recorded_gaussian_like)
    rule = make_rule("LG-FG-A", net, 3, x, {})
    torch.manual_seed(4)
    net.zero_grad(set_to_none=True)
    rule.step(x, y)
    assert len(drawn) == len(net.blocks)
    h, losses = x, [net.heads[0], net.out]  # layer 1 learns from its head, layer 2 from the output layer
    for blk, u, readout in zip(net.blocks, drawn, losses):
        z = blk(h.detach())
        (delta,) = torch.autograd.grad(F.cross_entropy(readout(z), y, reduction="sum"), z)  # rows: per example
        d = (delta * u).flatten(1).sum(1)
        assert d.std() > 0.1 * d.abs().mean()  # examples differ, so the batch mean would show
        params = list(blk.parameters())
        expected = torch.autograd.grad(z, params, grad_outputs=d.view(-1, *[1] * (u.dim() - 1)) * u / x.shape[0])
        for p, g in zip(params, expected):
            assert torch.allclose(p.grad, g, rtol=1e-5, atol=1e-7)
        h = z


def test_dkp_projects_the_error_through_b_before_updating_it():
    """DKP (authors' code): the hidden layers get e B_l with the B_l the step started with; then
    B_l steps along e^T y_l. Checked with a feedback learning rate that moves B_l, from a random B_l,
    so that projecting through the updated matrix would give another weight gradient."""
    net = tiny_fc()
    x, y = batch((6,))
    rule = make_rule("DKP", net, 3, x, {})
    rule.feedback_opt = torch.optim.SGD(rule.feedback_params(), lr=0.5)
    torch.manual_seed(8)
    with torch.no_grad():
        for b in rule.B:
            b.normal_()
    b_old = [b.detach().clone() for b in rule.B]
    with torch.no_grad():
        h1 = net.blocks[0](x)
        h2 = net.blocks[1](h1)
        e = rule._output_error(net.out(h2), y)
    b_new = [b0 - 0.5 * e.t() @ h for b0, h in zip(b_old, (h1, h2))]
    net.zero_grad(set_to_none=True)
    rule.step(x, y)
    assert all(torch.allclose(b.detach(), bn, atol=1e-6) for b, bn in zip(rule.B, b_new))
    pre = net.blocks[1][0](h1)
    for B, should in ((b_old, True), (b_new, False)):
        delta = (e @ B[1]) * (pre > 0)
        assert torch.allclose(net.blocks[1][0].weight.grad, delta.t() @ h1, atol=1e-6) is should


def test_fdfa_tangent_is_the_output_jacobian_times_perturbations():
    """FDFA's d (Eq. 7) equals sum_l (dy_L/dy_l) u_l, computed here by reverse mode."""
    net = tiny_fc()
    x, y = batch((6,))
    rule = make_rule("FDFA", net, 3, x, {})
    torch.manual_seed(7)
    _, us, logits, d = rule.directional(x)
    assert len(us) == len(net.blocks)  # the output layer is not perturbed
    ref = torch.zeros_like(d)
    for k in range(3):
        outs, h = [], x
        for blk in net.blocks:
            h = blk(h)
            outs.append(h)
        grads = torch.autograd.grad(net.out(h)[:, k].sum(), outs)
        ref[:, k] = sum((gr * u).flatten(1).sum(1) for gr, u in zip(grads, us))
    assert torch.allclose(d, ref, rtol=1e-4, atol=1e-6)
    # The closed-form output error equals autograd's dL/dlogits.
    lg = logits.detach().requires_grad_(True)
    (e_ref,) = torch.autograd.grad(F.cross_entropy(lg, y), lg)
    assert torch.allclose(rule._output_error(logits, y), e_ref, atol=1e-7)


def test_fdfa_feedback_update_follows_eq10():
    net = tiny_fc()
    x, y = batch((6,))
    rule = make_rule("FDFA", net, 3, x, {})
    sgd = torch.optim.SGD(rule.feedback_params(), lr=0.5)
    rule.feedback_opt = sgd
    torch.manual_seed(9)
    _, us, _, d = rule.directional(x)
    torch.manual_seed(9)
    b_before = [b.detach().clone() for b in rule.B]
    rule.step(x, y)
    for b0, b1, u in zip(b_before, rule.B, us):
        expected = b0 - 0.5 * (b0 - d.t() @ u.flatten(1) / x.shape[0])  # Eq. 8 with alpha = 0.5
        assert torch.allclose(b1.detach(), expected, atol=1e-6)


def test_dfa_projects_error_through_fixed_feedback_and_dkp_matches_output_update():
    net = tiny_fc()
    x, y = batch((6,))
    dfa = make_rule("DFA", net, 3, x, {})
    b0 = [b.clone() for b in dfa.B]
    dfa.step(x, y)
    assert all(torch.equal(a, b) for a, b in zip(b0, dfa.B))  # fixed
    assert all(b.abs().sum() > 0 for b in dfa.B)
    # Output layer gets the exact gradient.
    out_grad = net.out.weight.grad.clone()
    ref = true_grads(net, x, y, [net.out.weight])[0]
    assert torch.allclose(out_grad, ref, atol=1e-6)
    # DKP: the penultimate feedback's update is the output weights' gradient (Kolen-Pollack).
    net2 = tiny_fc()
    dkp = make_rule("DKP", net2, 3, x, {})
    dkp.feedback_opt = torch.optim.SGD(dkp.feedback_params(), lr=0.0)
    dkp.step(x, y)
    assert torch.allclose(dkp.B[-1].grad, net2.out.weight.grad, atol=1e-6)


def test_dfa_zero_initialises_forward_weights_but_not_before_batchnorm():
    cfg = {"method": "DFA", "arch": "fc", "depth": 3, "hidden": 16, "dataset": "digits"}
    net = build(cfg)
    assert all(float(m.weight.detach().abs().sum()) == 0 for m in net.modules() if isinstance(m, nn.Linear))
    alex = build({"method": "DFA", "arch": "alexnet", "dataset": "cifar100", "image_size": 64, "width_mult": 0.0625})
    convs = [m for m in alex.modules() if isinstance(m, nn.Conv2d)]
    assert all(float(c.weight.detach().abs().sum()) > 0 for c in convs)


@pytest.mark.parametrize("dataset,depth,hidden,neurons,params", [
    ("mnist", 2, 800, 810, "636 K"), ("mnist", 3, 800, 1610, "1.2 M"), ("mnist", 4, 800, 2410, "1.9 M"),
    ("cifar10", 2, 1000, 1010, "3.08 M"), ("cifar10", 3, 1000, 2010, "4.08 M"), ("cifar10", 4, 1000, 3010, "5.08 M")])
def test_fc_sizes_match_table_b5(dataset, depth, hidden, neurons, params):
    """Table B.5's counts, as printed: truncated, not rounded (1,276,810 is printed 1.2 M)."""
    net = build({"method": "BP", "arch": "fc", "depth": depth, "hidden": hidden, "dataset": dataset})
    side = 28 if dataset == "mnist" else 32
    ch = 1 if dataset == "mnist" else 3
    assert sum(hidden_sizes(net, torch.zeros(2, ch, side, side))) + 10 == neurons
    n = count_params(net)
    value, unit = params.split()
    scale = 1e3 if unit == "K" else 1e6
    decimals = len(value.split(".")[1]) if "." in value else 0
    truncated = int(n / scale * 10 ** decimals) / 10 ** decimals
    assert truncated == float(value), (n, params)


def test_cnn_matches_the_printed_architecture():
    net = build({"method": "BP", "arch": "cnn", "dataset": "mnist"})
    sizes = hidden_sizes(net, torch.zeros(2, 1, 28, 28))
    assert sizes == [15 * 12 * 12, 40 * 4 * 4, 128]  # 15C5-P2-40C5-P2-128, then 10 outputs
    assert net.out.out_features == 10


# What each rule must gain over the same net untrained (measured in the test: the same config at
# lr 0, one epoch), in points of test accuracy, and its budget. Chance is 10%; the untrained net
# scores 10.0% at seed 0 (10.0-13.3 over seeds 0-2). Same seed, other CPU = other rounding = a
# different trajectory, so each gain is set well clear of the spread over seeds measured here (a
# reseed moves these runs far more than the emulated CPU changes tried here: ATen's default and AVX2
# kernels, MKL and oneDNN held to SSE4, which moved them by 0-1.1 points), and above what the net
# gets when only its output layer learns (hidden gradients zeroed), so a rule that stops training
# the hidden layers fails too. Measured here (test accuracy %, seeds 0-9 unless said):
#   8 epochs: BP 95.6-96.9 (0-4), DKP 94.4-96.9 (0-4), FDFA 95.8-96.9 (0-4), LG-FG-A 91.1-93.6
#     (mean 92.7, sd 0.8), DFA 90.3-95.8 (mean 93.0, sd 1.5); output layer only: 51.1-70.8 (0-4).
#     Gain 70 (-> 80% at seed 0): 10 points (6 sd of DFA) under the worst seed, 9 over output-only.
#   FG-A, 20 epochs: 83.9-91.9 (seeds 0-7, mean 87.4, sd 2.4); output layer only: 35.6-60.3 (0-4).
#     Gain 60 (-> 70%): 13.9 points (5.8 sd) under the worst seed, 9.7 over output-only.
#   FG-W, lr 1e-2, 30 epochs: 70.8-78.3 (seeds 0-7, mean 75.2, sd 2.4); output only: 13.1-26.7 (0-4).
#     Gain 40 (-> 50%): 20.8 points (8.7 sd) under the worst seed, 23 over output-only.
# FG-W needs more steps (and FG-A more than the rest): as in the paper they are the slowest.
BUDGET = {"FG-W": dict(epochs=30, lr=1e-2, gain=40.0), "FG-A": dict(epochs=20, lr=3e-3, gain=60.0)}
DEFAULT_BUDGET = dict(epochs=8, lr=3e-3, gain=70.0)


@pytest.mark.parametrize("method", METHODS)
def test_every_rule_trains_a_tiny_net_above_chance_on_real_digits(method):
    """scikit-learn's packaged 8x8 digits (real), 3-layer FC net, a few epochs; chance is 10%."""
    from benchmarks.bacho2024.training import train

    budget = BUDGET.get(method, DEFAULT_BUDGET)
    cfg = {"method": method, "arch": "fc", "depth": 3, "hidden": 32, "dataset": "digits",
           "data_source": "sklearn", "epochs": budget["epochs"], "batch_size": 32, "lr": budget["lr"],
           "lr_decay": 0.95, "feedback_lr": 3e-3, "seed": 0, "normalize_mean": 0.5, "normalize_std": 0.5,
           "n_train": None, "n_test": None, "image_size": None, "batchnorm": False, "dfa_zero_init": True}
    untrained = train(dict(cfg, lr=0.0, epochs=1))["metrics"]["test_acc"]  # forward weights never move
    out = train(cfg)
    acc = out["metrics"]["test_acc"]
    assert acc - untrained > budget["gain"], f"{method}: {acc:.1f}% test accuracy, untrained {untrained:.1f}%"
    assert out["data"]["kind"] == "subset" and out["data"]["source"] == "sklearn"


@pytest.mark.parametrize("tangents", ["x", "w", "b", "xwb", "wb"])
def test_custom_linear_rule_agrees_with_pytorch(tangents):
    """Our Linear's JVP and backward equal F.linear's own forward- and reverse-mode results."""
    import torch.autograd.forward_ad as fwAD
    from benchmarks.bacho2024.models import Linear, _LinearFn

    torch.manual_seed(0)
    lin = Linear(5, 3)
    x = torch.randn(4, 5)
    t = {"x": torch.randn(4, 5), "w": torch.randn(3, 5), "b": torch.randn(3)}
    with fwAD.dual_level():
        args = [fwAD.make_dual(v, t[k]) if k in tangents else v
                for k, v in (("x", x), ("w", lin.weight.detach()), ("b", lin.bias.detach()))]
        ref_p, ref_t = fwAD.unpack_dual(F.linear(*args))
        our_p, our_t = fwAD.unpack_dual(_LinearFn.apply(*args))
    assert torch.allclose(our_p, ref_p, atol=1e-6) and torch.allclose(our_t, ref_t, atol=1e-5)
    # Reverse mode: the module's gradients equal nn.Linear's.
    ref = nn.Linear(5, 3)
    ref.load_state_dict(lin.state_dict())
    xg = x.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    g = torch.randn(4, 3)
    lin(xg).backward(g)
    ref(xr).backward(g)
    for a, b in [(xg.grad, xr.grad), (lin.weight.grad, ref.weight.grad), (lin.bias.grad, ref.bias.grad)]:
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("method", ["FDFA", "FG-W"])
def test_a_run_resumed_from_its_checkpoint_ends_exactly_like_an_uninterrupted_one(tmp_path, method):
    from benchmarks.bacho2024.training import train

    cfg = {"method": method, "arch": "fc", "depth": 3, "hidden": 16, "dataset": "digits",
           "data_source": "sklearn", "epochs": 4, "batch_size": 64, "lr": 3e-3, "lr_decay": 0.9,
           "feedback_lr": 3e-3, "seed": 3, "normalize_mean": 0.5, "normalize_std": 0.5,
           "n_train": 300, "n_test": 100, "image_size": None, "batchnorm": False, "dfa_zero_init": True}
    whole = train(cfg)["metrics"]

    class Preempted(Exception):
        pass

    def stop_after_2(epoch, **_):
        if epoch == 2:
            raise Preempted

    ck = str(tmp_path / "run.pt")
    with pytest.raises(Preempted):
        train(cfg, checkpoint=ck, progress=stop_after_2)
    resumed = train(cfg, checkpoint=ck)["metrics"]
    assert resumed["resumed"] == 1 and resumed["curves"]["epoch"] == [1, 2, 3, 4]
    assert resumed["curves"]["test_acc"] == whole["curves"]["test_acc"]
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-6)


# ----------------------------------------------------------------------------- fidelity variant keys

def test_fga_output_exact_trains_the_output_layer_by_its_true_gradient_and_perturbs_hidden_only():
    """Algorithm 3 (``fga_output=exact``): the logits carry no perturbation of their own, the output
    layer's gradient is exact, and the hidden estimate stays unbiased. Eq. 4's form (default)
    perturbs the logits, so its output-layer gradient is an estimate, not the true one."""
    net = tiny_fc()
    x, y = batch((6,))
    out_params = list(net.out.parameters())
    ref = true_grads(net, x, y, out_params)
    exact = make_rule("FG-A", net, 3, x, {"fga_output": "exact"})
    torch.manual_seed(3)
    _, _, _, us = exact.directional(x, y)
    assert len(us) == len(net.blocks)  # no perturbation at the logits
    net.zero_grad(set_to_none=True)
    exact.step(x, y)
    assert all(torch.allclose(p.grad, r, atol=1e-6) for p, r in zip(out_params, ref))
    eq4 = make_rule("FG-A", net, 3, x, {})
    torch.manual_seed(3)
    assert len(eq4.directional(x, y)[3]) == len(net.blocks) + 1
    net.zero_grad(set_to_none=True)
    eq4.step(x, y)
    assert not torch.allclose(net.out.weight.grad, ref[0], atol=1e-3)
    hidden = list(net.blocks.parameters())
    g = torch.cat([t.flatten() for t in true_grads(net, x, y, hidden)]).double()
    torch.manual_seed(12)
    assert_unbiased(mc_samples(exact, hidden, x, y, 4000), g)


@pytest.mark.parametrize("order", ["before", "after"])
def test_fdfa_projects_the_error_through_b_after_or_before_its_update(order):
    """Alg. 1 (``before``) projects e through the updated B_l; the authors' code (``after``) through the
    B_l the step started with, and updates it afterwards. Same B update either way."""
    net = tiny_fc()
    x, y = batch((6,))
    rule = make_rule("FDFA", net, 3, x, {"fdfa_feedback_update": order})
    rule.feedback_opt = torch.optim.SGD(rule.feedback_params(), lr=0.5)
    with torch.no_grad():
        for b in rule.B:
            b.normal_()
    b_old = [b.detach().clone() for b in rule.B]
    torch.manual_seed(9)
    _, us, logits, d = rule.directional(x)
    b_new = [b0 - 0.5 * (b0 - d.t() @ u.flatten(1) / x.shape[0]) for b0, u in zip(b_old, us)]
    e = rule._output_error(logits, y)
    torch.manual_seed(9)
    net.zero_grad(set_to_none=True)
    rule.step(x, y)
    assert all(torch.allclose(b.detach(), bn, atol=1e-6) for b, bn in zip(rule.B, b_new))
    used = b_new if order == "before" else b_old
    other = b_old if order == "before" else b_new
    # The last hidden layer's weight gradient is (e B_l * relu') ^T h_{l-1}.
    h1 = net.blocks[0](x).detach()
    pre = net.blocks[1][0](h1)
    for B, should in ((used, True), (other, False)):
        delta = (e @ B[1]) * (pre > 0)
        assert torch.allclose(net.blocks[1][0].weight.grad, delta.t() @ h1, atol=1e-6) is should


def test_one_pool_cnn_is_the_authors_conv_mnist_net():
    """``cnn_pools=1`` with batch norm: conv5(15)-BN-ReLU, conv5(40)-BN-ReLU, pool, fc(4000->128)-BN-ReLU,
    fc(128->10), the parameter count of networks/conv_mnist.py (529,214), and its unpooled second layer."""
    net = build({"method": "BP", "arch": "cnn", "dataset": "mnist", "cnn_pools": 1, "batchnorm": True})
    assert hidden_sizes(net, torch.zeros(2, 1, 28, 28)) == [15 * 24 * 24, 40 * 20 * 20, 128]
    total = sum(p.numel() for p in net.parameters())
    assert total == (15 * 25 + 15) + 2 * 15 + (40 * 15 * 25 + 40) + 2 * 40 + (4000 * 128 + 128) + 2 * 128 + (128 * 10 + 10)
    assert total == 529214
    assert sum(isinstance(m, nn.BatchNorm1d) for m in net.modules()) == 1
    # The text's two-pool net with batch norm also normalises its fc layer (the `bn` of every variant).
    two = build({"method": "BP", "arch": "cnn", "dataset": "mnist", "batchnorm": True})
    assert sum(isinstance(m, nn.BatchNorm1d) for m in two.modules()) == 1


def test_the_step_time_benchmark_prints_every_rule_and_the_jax_reference(capsys):
    # Not a timing test: the README's benchmark command must run and print every row it promises.
    pytest.importorskip("jax")
    from benchmarks.bacho2024 import bench

    assert bench.main(["--hidden", "16", "--rounds", "1", "--steps", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split()[:5] == ["method", "ms/step", "x", "BP", "estimate"], out
    rows = {line.split()[0]: line for line in out[3:]}
    assert set(rows) == set(METHODS) | {"BP"}, out
    assert all(len(rows[m].split()) >= 5 for m in METHODS), out  # step and estimate columns, each with x BP
    assert any(line.startswith("BP (JAX)") and "torch BP =" in line for line in out), out
    assert "<= 0.75x" in rows["DFA"] and "<= 1.0x" in rows["FG-A"] and "<= 1.5x" in rows["FG-W"]


CONV_NETS = {"cnn": {}, "cnn one pool, BN": {"cnn_pools": 1, "batchnorm": True},
             "alexnet": {"arch": "alexnet", "dataset": "cifar100", "batchnorm": True, "image_size": 64,
                         "width_mult": 0.0625}}


@pytest.mark.parametrize("net_name", list(CONV_NETS))
@pytest.mark.parametrize("method", METHODS)
def test_conv_nets_on_channels_last_step_exactly_as_on_the_default_layout(method, net_name):
    """Channels-last conv nets (training.memory_format, for speed) compute the same step: the same
    gradients and the same feedback updates from the same seed, up to float summation order; the
    forward-gradient rules draw the same noise for each neuron (rules._gaussian_like)."""
    from benchmarks.bacho2024.training import memory_format, setup

    cfg = {"method": method, "arch": "cnn", "dataset": "mnist", "lr": 1e-3, "lr_decay": 0.95,
           "feedback_lr": 1e-3, "batchnorm": False, "image_size": None, "dfa_zero_init": False,
           **CONV_NETS[net_name]}
    assert memory_format(cfg) == torch.channels_last
    shape = (3, 64, 64) if cfg["arch"] == "alexnet" else (1, 28, 28)
    n_classes = 100 if cfg["arch"] == "alexnet" else 10
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, *shape, generator=g), torch.randint(0, n_classes, (8,), generator=g)
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(0)
        net, rule, opt, _ = setup(cfg, torch.device("cpu"), n_classes, x[:2], fmt=fmt)
        assert net.blocks[0][0].weight.is_contiguous(memory_format=fmt)
        torch.manual_seed(2)
        loss = rule.step(x.contiguous(memory_format=fmt), y)
        grads = [p.grad.clone() for p in net.parameters()]
        # the feedback matrices' gradients (DKP, FDFA), not B after Adam's first step: that is
        # +-lr wherever the gradient is nonzero, whatever its size, so rounding flips its sign
        feedback = [b.grad.clone() for b in getattr(rule, "B", []) if b.grad is not None]
        results.append((float(loss), grads, feedback))
    (loss0, g0, b0), (loss1, g1, b1) = results
    assert loss0 == pytest.approx(loss1, rel=1e-5)
    assert len(g0) == len(g1) and len(b0) == len(b1)
    # atol from the largest gradient: a conv bias before batch norm has a gradient of 0 up to rounding
    scale = max(float(a.abs().max()) for a in g0)
    for a, b in zip(g0 + b0, g1 + b1):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("net_name", list(CONV_NETS))
@pytest.mark.parametrize("method", METHODS)
def test_fused_adam_updates_each_weight_from_its_own_gradient(method, net_name):
    """The fused optimisers pair a weight's and its gradient's elements by memory position (on CPU
    they do not check strides): a gradient laid out otherwise than its weight, as FG-W's row-major
    tangents on a channels-last conv weight once were, moves the wrong weights, silently. Every rule
    hands over gradients in their weights' layout, and the training optimiser's step equals the
    unfused one from the same gradients."""
    from benchmarks.bacho2024.training import setup

    cfg = {"method": method, "arch": "cnn", "dataset": "mnist", "lr": 1e-3, "lr_decay": 0.95,
           "feedback_lr": 1e-3, "batchnorm": False, "image_size": None, "dfa_zero_init": False,
           **CONV_NETS[net_name]}
    shape = (3, 64, 64) if cfg["arch"] == "alexnet" else (1, 28, 28)
    n_classes = 100 if cfg["arch"] == "alexnet" else 10
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, *shape, generator=g), torch.randint(0, n_classes, (8,), generator=g)
    torch.manual_seed(0)
    net, rule, opt, _ = setup(cfg, torch.device("cpu"), n_classes, x[:2], fmt=torch.channels_last)
    rule.step(x.contiguous(memory_format=torch.channels_last), y)
    params = [p for p in net.parameters() if p.grad is not None]
    assert any(p.dim() == 4 and not p.is_contiguous() for p in params)  # channels-last conv weights
    for p in params:
        assert p.grad.stride() == p.stride(), (method, tuple(p.shape))
    ref = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for r, p in zip(ref, params):
        r.grad = p.grad.clone()
    torch.optim.Adam(ref, lr=1e-3, foreach=False).step()
    opt.step()
    for r, p in zip(ref, params):
        assert torch.allclose(p, r, rtol=0, atol=1e-7), (method, tuple(p.shape))


def test_noise_and_feedback_gradients_are_stored_like_the_activity_they_meet():
    # Mixed layouts are correct but slow (a strided path for every elementwise op): the logical-order
    # noise and DFA's e B are stored like the channels-last activity they are added to.
    from benchmarks.bacho2024.rules import _gaussian_like, _stored_like

    t = torch.zeros(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    u = _gaussian_like(t)
    assert u.is_contiguous(memory_format=torch.channels_last) and not u.is_contiguous()
    torch.manual_seed(0)
    assert torch.equal(u, torch.randn(2, 3, 4, 5))  # the same values as the row-major draw
    assert _gaussian_like(torch.zeros(2, 3)).is_contiguous()
    g = torch.randn(2, 60).view(2, 3, 4, 5)
    assert torch.equal(_stored_like(g, t), g) and _stored_like(g, t).is_contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------- subnormal flushing
def _flushed() -> bool:
    """Whether the CPU treats subnormals as zero right now (1e-40 is subnormal in float32)."""
    return (torch.tensor([1e-40]) * 1.0).item() == 0.0


def _digits_fc(method, **kw):
    return {"method": method, "arch": "fc", "depth": 3, "hidden": 16, "dataset": "digits",
            "data_source": "sklearn", "epochs": 2, "batch_size": 64, "lr": 3e-3, "lr_decay": 0.9,
            "feedback_lr": 3e-3, "seed": 3, "normalize_mean": 0.5, "normalize_std": 0.5,
            "n_train": 200, "n_test": 100, "image_size": None, "batchnorm": False, "dfa_zero_init": True, **kw}


def test_training_flushes_subnormals_and_restores_the_flag_after():
    """Training runs with subnormals flushed (an unflushed FC run was ~3x slower late in training)
    and gives the flag back: nothing else in the process may see it."""
    from benchmarks.bacho2024.training import train

    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    seen = []
    assert not _flushed()
    train(_digits_fc("LG-FG-A"), progress=lambda **_: seen.append(_flushed()))
    assert seen == [True, True] and not _flushed()


def test_flushing_subnormals_leaves_training_bit_identical():
    """The claim behind flushing: values below 1.2e-38 move nothing float32 can represent next to
    the weights. Adam moments are seeded with subnormals (what ReLU units silent on a batch leave
    behind late in a run) and four units are silenced, so that their moments stay subnormal (0.9 x a
    few times the smallest subnormal rounds back up); then the same steps run with and without
    flushing."""
    from benchmarks.bacho2024.training import Batches, setup
    from benchmarks import data

    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    cfg = _digits_fc("LG-FG-A")
    split = data.load("digits", "sklearn", None, n_train=640, n_test=10)
    xs = Batches(split.x_train, split.y_train, cfg, torch.device("cpu"))
    batches = list(xs.batches(64))
    tiny = torch.finfo(torch.float32).tiny

    def run(flush):
        torch.manual_seed(0)
        net, rule, opt, _ = setup(cfg, torch.device("cpu"), split.n_classes, xs.prep(xs.x[:2]))
        for xb, yb in batches[:3]:
            rule.step(xb, yb); opt.step(); opt.zero_grad(set_to_none=True)
        first = next(m for m in net.blocks[0].modules() if isinstance(m, Linear))
        with torch.no_grad():
            first.bias[:4] = -1e3  # four silent units: their weights' gradients are exactly 0 from here
        for p in net.parameters():  # half of every moment tensor: a small multiple of tiny / 2**20
            m = opt.state[p]["exp_avg"]
            m.view(-1)[::2] = tiny * 2.0 ** -20 * torch.arange(1, m.view(-1)[::2].numel() + 1).remainder(5).add(1)
        torch.set_flush_denormal(flush)
        try:
            for _ in range(3):
                for xb, yb in batches:
                    rule.step(xb, yb); opt.step(); opt.zero_grad(set_to_none=True)
        finally:
            torch.set_flush_denormal(False)
        subnormal = sum(int(((s["exp_avg"] != 0) & (s["exp_avg"].abs() < tiny)).sum()) for s in opt.state.values())
        return [p.detach().clone() for p in net.parameters()], subnormal

    plain, n_plain = run(False)
    flushed, n_flushed = run(True)
    assert n_plain > 100 and n_flushed == 0  # the plain run really carried subnormals to the end
    for a, b in zip(plain, flushed):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- heap retention
def test_training_retains_freed_memory(monkeypatch):
    """Training asks glibc to keep freed blocks (benchmarks.torch_common.retain_freed_memory):
    without it, Table 2's CNN page-faulted 4-5 k times a step and ran ~25% slower."""
    import benchmarks.bacho2024.training as training

    calls = []
    monkeypatch.setattr(training, "retain_freed_memory", lambda: calls.append(1) or True)
    training.train(_digits_fc("BP", epochs=1))
    assert calls == [1]


_HEAP_PROBE = r"""
import hashlib, resource, sys
import torch
from benchmarks.bacho2024.training import setup
from benchmarks.torch_common import retain_freed_memory
torch.set_num_threads(1)
retained = retain_freed_memory() if sys.argv[1] == "retain" else None
cfg = {"method": "BP", "arch": "cnn", "cnn_pools": 1, "batchnorm": True, "dataset": "mnist", "lr": 1e-3,
       "lr_decay": 0.95, "feedback_lr": 1e-3, "image_size": None, "dfa_zero_init": True}
torch.manual_seed(0)
x = torch.randn(64, 1, 28, 28).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (64,))
net, rule, opt, _ = setup(cfg, torch.device("cpu"), 10, x[:2])
def steps(n):
    for _ in range(n):
        rule.step(x, y); opt.step(); opt.zero_grad(set_to_none=True)
steps(12)  # the heap grows to its peak over the first ~10 steps
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
steps(5)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()
print(retained, faults, digest)
"""


def test_retaining_freed_memory_stops_page_faults_and_changes_no_number():
    """Two fresh processes train the one-pool CNN (batch 64) for the same 17 steps, one with the
    heap retained: its steps stop page-faulting, and its weights are bit-identical (where a tensor
    lives cannot change what it holds)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def probe(mode):
        out = subprocess.run([sys.executable, "-c", _HEAP_PROBE, mode], cwd=root, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stderr[-2000:]
        retained, faults, digest = out.stdout.split()
        return retained, int(faults), digest

    retained, faults_kept, digest_kept = probe("retain")
    if retained != "True":
        pytest.skip("not glibc: nothing to retain")
    _, faults_plain, digest_plain = probe("plain")
    # five steps after the heap's warm-up; seen: ~6 k faults a step plain, 0 retained (sometimes
    # a few hundred at one step while the heap still grows)
    assert faults_plain > 10_000, faults_plain  # glibc really hands multi-MiB blocks back and forth
    assert faults_kept < 2000, faults_kept
    assert digest_kept == digest_plain
