"""Fournier et al. (2023) fidelity variants: each computes exactly its formula.

- ``code``: a weight-space random guess divided by its squared norm per sample and tensor
  (``random_weight_norm: per_tensor``); a batch norm's bias projection written to its weight and the
  bias left with the raw guess gradient (``bn_weight_grad: bias_overwrite``).
- ``per-batch``: one projection per tensor, of the batch gradient T on the batch guess G
  (``projection: batch``), checked against T and G computed independently, and T.v against forward mode.
- The specs: which cells each variant changes, the Fashion-MNIST stand-in at small scale.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.autograd.forward_ad as fwAD
from torch.func import functional_call

from benchmarks.fournier2023 import config as fconfig
from benchmarks.fournier2023 import estimators as est
from benchmarks.fournier2023.specs import TABLES
from benchmarks.fournier2023.training import setup
from benchmarks.suite.errors import SpecError
from benchmarks.suite.spec import expand, run_id
from test_fournier_engine import make_cfg as engine_cfg, one_thread  # noqa: F401 (autouse fixture)

CPU = torch.device("cpu")
SPECS = {t.table: t for t in TABLES}


def make_cfg(**overrides) -> dict:
    """test_fournier_engine's tiny config, in weight space; a random guess of the global target
    takes no auxiliary."""
    cfg = engine_cfg(**{"space": "weight", **overrides})
    if cfg["guess"] in est.RANDOM_GUESSES and cfg["target"] == "global":
        cfg["aux"], cfg["aux_hidden"], cfg["aux_depth"] = None, None, None
    return cfg


def step(**overrides):
    """One traced float64 step of a tiny 8-block net; returns (net, trace, x, y)."""
    cfg = make_cfg(**overrides)
    fconfig.validate_config(cfg)
    torch.manual_seed(1)
    net, stepper, _, _ = setup(cfg, CPU, 3, 10)
    net.double()
    stepper.trace = {}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (4,), generator=g)
    stepper.step(x, y)
    return net, stepper.trace, x, y


def _bn_params(net, j):
    return [(m.weight, m.bias) for m in net.blocks[j].modules() if isinstance(m, nn.BatchNorm2d)]


def _projection(dot, g):
    return ((dot / (g.flatten(1).pow(2).sum(1) + est.EPS)).view(-1, *[1] * (g.dim() - 1)) * g).sum(0)


def _plain(dot, g):
    return (dot.view(-1, *[1] * (g.dim() - 1)) * g).sum(0)


# ------------------------------------------------------------------------------ code: random guesses

@pytest.mark.parametrize("normalised", [False, True])
def test_weight_space_random_guesses_are_unbiased_in_the_text_and_normalised_in_the_code(normalised):
    extra = {"random_weight_norm": "per_tensor"} if normalised else {}
    net, trace, _, _ = step(guess="gaussian", **extra)
    checked = 0
    for j, entries in trace.items():
        for p, dot, g in entries:
            expected = _projection(dot, g) if normalised else _plain(dot, g)
            other = _plain(dot, g) if normalised else _projection(dot, g)
            assert torch.allclose(p.grad, expected, rtol=1e-9, atol=1e-14), (j, tuple(p.shape))
            # the two forms differ by about the tensor's size: the test tells them apart
            assert not torch.allclose(p.grad, other, rtol=1e-3, atol=0), (j, tuple(p.shape))
            checked += 1
    assert checked >= 7 * 3  # every conv and batch-norm tensor of the 7 estimated blocks


# ------------------------------------------------------------------------------ code: the BN slip

@pytest.mark.parametrize("guess", ["local", "ntk"])
def test_the_code_writes_a_batch_norms_bias_projection_to_its_weight_and_leaves_the_raw_guess_on_the_bias(guess):
    paper_net, paper_trace, _, _ = step(guess=guess)
    code_net, code_trace, _, _ = step(guess=guess, bn_weight_grad="bias_overwrite")
    n_bn = 0
    for j, entries in code_trace.items():
        by_param = {id(p): (dot, g) for p, dot, g in entries}
        for gamma, beta in _bn_params(code_net, j):
            beta_dot, beta_g = by_param[id(beta)]
            assert torch.allclose(gamma.grad, _projection(beta_dot, beta_g), rtol=1e-9, atol=1e-14)
            assert torch.allclose(beta.grad, beta_g.sum(0), rtol=1e-9, atol=1e-14)  # the raw guess, summed
            n_bn += 1
        for p, dot, g in entries:  # convolutions are untouched
            if p.dim() == 4:
                assert torch.allclose(p.grad, _projection(dot, g), rtol=1e-9, atol=1e-14)
    assert n_bn >= 7
    # the text's estimator projects gamma on its own guess (same seed, same step: it differs)
    for j, entries in paper_trace.items():
        for (gamma, _), (gamma_code, _) in zip(_bn_params(paper_net, j), _bn_params(code_net, j)):
            dot, g = {id(p): (d, gg) for p, d, gg in entries}[id(gamma)]
            assert torch.allclose(gamma.grad, _projection(dot, g), rtol=1e-9, atol=1e-14)
            assert not torch.allclose(gamma.grad, gamma_code.grad, rtol=1e-3, atol=0)


def test_with_a_random_guess_the_code_gives_gamma_betas_estimate_and_beta_nothing():
    net, trace, _, _ = step(guess="rademacher", bn_weight_grad="bias_overwrite", random_weight_norm="per_tensor")
    for j, entries in trace.items():
        by_param = {id(p): (dot, g) for p, dot, g in entries}
        for gamma, beta in _bn_params(net, j):
            assert torch.allclose(gamma.grad, _projection(*by_param[id(beta)]), rtol=1e-9, atol=1e-14)
            assert beta.grad is None  # no guess backward ran: the optimiser skips beta


# ------------------------------------------------------------------------------ per-batch

def _block_input(net, x, j):
    h = x
    for blk in net.blocks[:j]:
        h = blk(h)
    return h.detach()


def _global_grads(net, x, y, j):
    """T: the batch gradient of the global loss w.r.t. block j's parameters (end-to-end)."""
    loss = F.cross_entropy(net(x), y)
    return torch.autograd.grad(loss, list(net.blocks[j].parameters()))


def test_the_per_batch_projection_is_the_batch_target_projected_on_the_batch_local_guess():
    net, trace, x, y = step(guess="local", projection="batch")
    assert set(trace) == set(range(len(net.blocks) - 1))
    for j, entries in trace.items():
        params = list(net.blocks[j].parameters())
        targets = _global_grads(net, x, y, j)
        out = net.blocks[j](_block_input(net, x, j))
        guesses = torch.autograd.grad(net.aux[j].loss(out, y), params)  # block j's local loss
        for (p, t_traced, g_traced), p2, t, g in zip(entries, params, targets, guesses):
            assert p is p2
            assert torch.allclose(t_traced, t, rtol=1e-9, atol=1e-14)
            assert torch.allclose(g_traced, g, rtol=1e-9, atol=1e-14)
            expected = (t * g).sum() / (g.pow(2).sum() + est.EPS) * g
            assert torch.allclose(p.grad, expected, rtol=1e-9, atol=1e-14), (j, tuple(p.shape))
            # batch-wise differs from per-sample projecting and summing (a different estimator)
            assert not torch.allclose(expected, t, rtol=1e-2, atol=0)


def test_the_per_batch_random_estimate_is_t_dot_v_times_v_with_t_dot_v_the_forward_mode_derivative():
    net, trace, x, y = step(guess="gaussian", projection="batch")
    names = dict(net.named_parameters())
    for j in (0, 3, 6):
        params = list(net.blocks[j].parameters())
        ids = {id(p) for p in params}
        keys = [k for k, p in names.items() if id(p) in ids]
        v = {k: g for k, (_, _, g) in zip(keys, trace[j])}
        for (p, t, g), t_exact in zip(trace[j], _global_grads(net, x, y, j)):
            assert torch.allclose(t, t_exact, rtol=1e-9, atol=1e-14)
            assert torch.allclose(p.grad, (t * g).sum() * g, rtol=1e-9, atol=1e-14)

        with torch.no_grad(), fwAD.dual_level():  # dual numbers: the loss's derivative along v
            duals = {k: fwAD.make_dual(names[k].detach(), v[k]) for k in keys}
            loss = F.cross_entropy(functional_call(net, {**names, **duals}, (x,)), y)
            tangent = fwAD.unpack_dual(loss).tangent
        dot = sum((t * g).sum() for _, t, g in trace[j])
        assert torch.allclose(tangent, dot, rtol=1e-9, atol=1e-14)  # T.v summed over the block's tensors


def test_project_batch_formulas():
    t = torch.randn(3, 4, dtype=torch.float64)
    assert torch.allclose(est.project_batch(t, -2.5 * t), t, rtol=1e-12)  # scale-free, exact on the target
    g = torch.zeros_like(t)
    g[0, 0] = 1.0
    assert torch.allclose(est.project_batch(t, g), t[0, 0] * g)
    torch.manual_seed(0)
    v = torch.randn(20000, 3, 4, dtype=torch.float64)
    draws = (v * t).sum((1, 2)).view(-1, 1, 1) * v
    se = draws.std(0) / 20000 ** 0.5
    assert ((draws.mean(0) - t).abs() < 4 * se).all()  # unbiased: every entry within 4 standard errors
    assert ((0.7 * draws.mean(0) - t).abs() > 4 * se).any()  # and a 30% shrinkage would be caught


# ------------------------------------------------------------------------------ config validation

@pytest.mark.parametrize("overrides,word", [
    ({"projection": "batch", "space": "activity"}, "space"),
    ({"random_weight_norm": "per_tensor"}, "random_weight_norm"),  # a local guess: nothing to normalise
    ({"guess": "gaussian", "random_weight_norm": "yes"}, "random_weight_norm"),
    ({"bn_weight_grad": "bias_overwrite", "space": "activity"}, "bn_weight_grad"),
    ({"bn_weight_grad": "bias_overwrite", "projection": "batch"}, "bn_weight_grad"),
])
def test_variant_keys_outside_their_estimator_are_refused(overrides, word):
    with pytest.raises(SpecError, match=word):
        fconfig.validate_config(make_cfg(**overrides))


# ------------------------------------------------------------------------------ specs

def test_variants_change_exactly_the_weight_space_forward_gradient_cells():
    t3 = SPECS["table3"]
    assert [v.name for v in t3.variants] == ["code", "per-batch"]
    assert not SPECS["table6"].variants  # activity only: nothing to change
    paper = {(r["row"], r["col"]): r for r in expand(t3, "full", seeds=1, variant="paper")}
    code = expand(t3, "full", seeds=1, variant="code")
    assert {r["col"] for r in code} == {"CIFAR-10 Weight", "ImageNet32 Weight"}
    for r in code:
        base = paper[(r["row"], r["col"])]["config"]
        added = {k: v for k, v in r["config"].items() if base.get(k) != v}
        random = base["guess"] in est.RANDOM_GUESSES
        assert added == {"variant": "code", "bn_weight_grad": "bias_overwrite",
                         **({"random_weight_norm": "per_tensor"} if random else {})}
        fconfig.validate_config(r["config"])
        assert r["run_id"] != paper[(r["row"], r["col"])]["run_id"] == run_id(base)
    batch = expand(t3, "full", seeds=1, variant="per-batch")
    assert {r["config"]["projection"] for r in batch} == {"batch"} and len(batch) == len(code)


def test_the_default_runs_the_chosen_variant_on_random_weight_guesses_and_the_text_elsewhere():
    """Without --variant, a random weight-space guess of a local target runs the code's estimator and
    one of the global target the per-batch projection (the Fashion-MNIST evidence); intermediate
    targets and every other cell (activity space, local and NTK guesses, local learning) run the text."""
    from benchmarks.fournier2023.specs import RANDOM_WEIGHT_DEFAULT
    assert RANDOM_WEIGHT_DEFAULT == {"local": "code", "global": "per-batch", "intermediate": "paper"}
    changed = {"code": {"random_weight_norm": "per_tensor"}, "per-batch": {"projection": "batch"}}
    chosen_rows = {}
    for spec in TABLES:
        paper = {(r["row"], r["col"], r["seed"]): r for r in expand(spec, "full", seeds=1, variant="paper")}
        for r in expand(spec, "full", seeds=1):
            base = paper[(r["row"], r["col"], r["seed"])]
            c = base["config"]
            random_weight = (c.get("algorithm") == "fg" and c.get("space") == "weight"
                             and c.get("projection") == "guess" and c.get("guess") in est.RANDOM_GUESSES)
            want = {"local": "code", "global": "per-batch"}.get(c.get("target")) if random_weight else None
            if want:
                chosen_rows[(spec.table, r["row"])] = want
                assert r["config"]["variant"] == want, (spec.table, r["row"], r["col"])
                assert changed[want].items() <= r["config"].items()
            else:
                assert r["run_id"] == base["run_id"], (spec.table, r["row"], r["col"])
        for row in spec.rows:
            assert spec.chosen_variant(row) == chosen_rows.get((spec.table, row), "paper")
    assert {("table4", "8b Gaussian Guess"): "code", ("table9", "8b CNN Rademacher Guess"): "code",
            ("table12", "Local Target Gaussian Guess"): "code", ("table3", "Gaussian"): "per-batch",
            ("table7", "16b Rademacher"): "per-batch", ("table8", "Random Gaussian"): "per-batch"}.items() \
        <= chosen_rows.items()
    assert not any(t == "table5" for t, _ in chosen_rows)  # intermediate target: the text
    assert all("Gaussian" in row or "Rademacher" in row for _, row in chosen_rows)


def test_small_scale_puts_real_fashion_mnist_in_for_cifar10_where_guesses_are_compared():
    for table in ("table3", "table4", "table6", "table8"):
        configs = [r["config"] for r in expand(SPECS[table], "small", seeds=1) if "CIFAR" in r["col"]
                   or table != "table3"]
        assert configs and {c["dataset"] for c in configs} == {"fashion_mnist"}, table
        assert {(c["n_train"], c["n_test"], c["image_size"]) for c in configs} == {(4000, 2000, 14)}
        assert "real Fashion-MNIST for CIFAR-10" in SPECS[table].scales["small"].note
    for table in ("table7", "table9"):
        configs = [r["config"] for r in expand(SPECS[table], "small", seeds=1) if r["col"].startswith("Fashion")]
        assert configs and {(c["dataset"], c["n_train"], c["image_size"]) for c in configs} == {
            ("fashion_mnist", 4000, 14)}
    # the other CIFAR-10 tables keep the packaged MNIST digits (no data root needed)
    assert {r["config"]["dataset"] for r in expand(SPECS["table5"], "small", seeds=1)} == {"mnist"}
