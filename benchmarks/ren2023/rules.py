"""The eleven learning rules of Ren et al. (2023), Section 6, on a LocalMixer (models.py).

``make_grad_fn(method, arch, objective, temperature)`` returns ``grads(params, feedback, batch, key)
-> (grads, {"loss": ...})``: a pure function (jit it) whose grads have the structure of ``params``.
``batch`` = {"x": patches [N, P, patch_dim], "y": one-hot labels [N, K], "x2": view-2 patches or None}.

Losses. Global methods (BP, FA, DFA, FG-W, FG-A) train the backbone on the global loss: the final
classifier's cross-entropy (supervised) or the last block head's InfoNCE (contrastive). Local methods
(L-*, LG-*) train it on the sum over blocks of the block heads' losses (Section 4, replicated over
patches and groups), L-* without and LG-* with a stop-gradient between blocks (Section 6, 1-3).
Heads always learn their exact local gradient (notes); "the last layer always uses backprop"
(Section 5): the final classifier (contrastive: the linear readout) learns exactly, from
stop-gradient features in the local methods and in the contrastive ones (notes: `readout`), from
live features in supervised BP / FA, where it is the output layer. Losses are batch means.

Rules:
- BP, L-BP, LG-BP: reverse-mode gradients of those losses (jax.grad).
- FA, L-FA, LG-FA: the same with every linear layer's backward pass using a fixed random matrix B in
  place of W (Lillicrap et al. 2016): dx = g B^T, dW = x^T g exact; normalisation and ReLU
  backward are exact (Section 6, 2: "gradients to normalization layers and activation functions
  are known"). Heads and the classifier use feedback matrices too.
- DFA: the output error e = dL/d(output) [N, E] reaches every layer's activity a (after LN, before
  the ReLU) through one fixed random matrix B_s [E, C] per layer, shared over patches (a per-unit
  B of E x P*C would be 8 GB a layer for L/32/64); delta_a = (e B_s) * ReLU'(a), then exact LN
  backward and dW = x^T delta_z.
- FG-W: one N(0,1) tangent for every backbone weight and bias, one jax.jvp of the global batch-mean
  loss; g = d v (Eq. 2).
- FG-A: N(0,1) perturbations u at every layer's activity a (after LN, before the ReLU; Section 3.6
  and notes), independent per example, all layers at once in one jax.jvp; d_n = directional
  derivative of example n's loss; delta_a = d_n u ReLU'(a) (perturbation zeroed where the ReLU is
  inactive, Section 3.6), exact LN backward, dW = x^T delta_z summed over examples and patches
  (Eq. 3). Batch: the authors' global FG-A does NOT average over the batch (notes: avg_batch=False,
  gradient B x larger); we follow the code: ``GLOBAL_FGA_SUMS_BATCH``.
- LG-FG-W / LG-FG-A: per block, the replicated loss's JVP is [N, P, G] (notes: one derivative per
  example, patch and group). LG-FG-A matches each perturbation with its own loss: a grouped-layer or
  channel-dense unit of group g in patch p uses d[n, p, g]; a token-mixing unit of patch p, which
  reaches every group of p, uses sum_g d[n, p, g] (notes). LG-FG-W sums over examples and patches
  (weights are shared by all patches) to one scalar per group: dense columns / grouped weights of
  group g use it, token-mixing weights use the sum over groups (notes). The loss is the batch mean.
  With local LN and the perturbation placed after the LN, LG-FG-A is unbiased for the gradient of
  the sum of local losses (tested). LG-FG-W perturbs weights before the per-patch LN of the dense
  layer, so it misses the cross-group terms through that LN's statistics, as the authors' code does.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from . import losses
from .models import (INIT_STD_CAP, LAYERS, Arch, backbone, classifier_logits, head_input, normalize,
                     pooled_features, site_shapes)

METHODS = ("BP", "L-BP", "LG-BP", "FA", "L-FA", "LG-FA", "DFA", "FG-W", "FG-A", "LG-FG-W", "LG-FG-A")
GLOBAL = {"BP", "FA", "DFA", "FG-W", "FG-A"}
STOP_BETWEEN_BLOCKS = {"LG-BP", "LG-FA", "LG-FG-W", "LG-FG-A"}
FEEDBACK_ALIGNMENT = {"FA", "L-FA", "LG-FA"}
BACKPROP_FAMILY = {"BP", "L-BP", "LG-BP", "FA", "L-FA", "LG-FA"}
GLOBAL_FGA_SUMS_BATCH = True  # notes: the authors' global FG-A skips the batch average


# ---------------------------------------------------------------------------------------------
# feedback alignment


def _feedback_linear(fn):
    """fn(x, w, b) whose backward pass sends dx through a fixed matrix B instead of w."""

    @jax.custom_vjp
    def f(x, w, b, B):
        return fn(x, w, b)

    def fwd(x, w, b, B):
        return fn(x, w, b), (x, w, b, B)

    def bwd(res, g):
        x, w, b, B = res
        dw, db = jax.vjp(lambda w_, b_: fn(x, w_, b_), w, b)[1](g)
        (dx,) = jax.vjp(lambda x_: fn(x_, B, b), x)[1](g)
        return dx, dw, db, jnp.zeros_like(B)

    f.defvjp(fwd, bwd)
    return f


def _head_linear(x, w, b):
    return x @ w + b


_FA = {kind: _feedback_linear(fn) for kind, fn in LAYERS.items()}
_FA["head"] = _feedback_linear(_head_linear)


def _bind(fa_fn, B):
    return lambda x, w, b: fa_fn(x, w, b, B)


def init_feedback(method: str, arch: Arch, seed):
    """Fixed random feedback matrices (same N(0,1) * min(2/sqrt(fan_in), 0.1) scheme as the forward
    weights, numpy generator seeded by ``seed``), or None for rules without any."""
    rng = np.random.default_rng(seed)

    def mat(shape, fan_in):
        return jnp.asarray(min(2.0 / math.sqrt(fan_in), INIT_STD_CAP) * rng.standard_normal(shape, np.float32))

    if method in FEEDBACK_ALIGNMENT:
        blocks = []
        for blk in range(arch.num_blocks):
            blocks.append([mat(*arch.layer_shapes(blk, kind)[0]) for kind in arch.layer_kinds(blk)])
        c = arch.channels
        heads = [mat((c, arch.head_dim), c) for _ in range(arch.num_blocks)]
        return {"blocks": blocks, "heads": heads, "classifier": mat((c, arch.n_classes), c)}
    if method == "DFA":
        e = arch.head_dim  # output error: K logits, or the last head's projection (contrastive)
        return {"blocks": [[mat((e, arch.channels), e) for _ in arch.layer_kinds(blk)]
                           for blk in range(arch.num_blocks)]}
    return None


# ---------------------------------------------------------------------------------------------
# shared pieces


def _mean(t):
    return jnp.mean(t)


class _Ctx:
    """Per-rule constants: architecture and objective."""

    def __init__(self, method, arch: Arch, objective, temperature, loss_impl):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        if loss_impl not in ("fused", "naive"):
            raise ValueError(f"unknown loss_impl {loss_impl!r}")
        self.method, self.arch, self.objective = method, arch, objective
        self.temperature = None if temperature is None else float(temperature)
        self.replicated = losses.fused_replicated if loss_impl == "fused" else losses.naive_replicated
        self.contrastive = objective == "contrastive"

    # aux of block l's loss: one-hot labels, or the view-2 projections of that block (stop-gradient)
    def aux(self, params, batch, outs2, blk):
        if not self.contrastive:
            return batch["y"]
        return self.targets(params, outs2, blk)

    def targets(self, params, outs2, blk):
        h = params["heads"][blk]
        feats = pooled_features(head_input(outs2[blk], self.arch.norm_grad))
        return jax.lax.stop_gradient(losses.project(feats, h["w"], h["b"]))

    def view2_outputs(self, params, batch):
        if not self.contrastive:
            return None
        outs2, _ = backbone(self.arch, jax.lax.stop_gradient(params), batch["x2"], stop_between_blocks=True)
        return outs2

    def head_loss(self, params, out, blk, aux, linear_fn=None):
        """Conventional (pooled) loss of block blk's head, [N]."""
        h = params["heads"][blk]
        return losses.pooled_loss(self.objective, self.temperature, head_input(out, self.arch.norm_grad),
                                  h["w"], h["b"], aux, linear_fn=linear_fn)

    def classifier_loss(self, params, out, y, linear_fn=None):
        logits = classifier_logits(params, out, self.arch.norm_grad, linear_fn=linear_fn)
        return losses.ce_from_logits(logits, y), logits

    def top_grads(self, params, outs, batch, outs2, local: bool):
        """Exact gradients of the heads and the classifier on stop-gradient features, and the loss
        that is reported (classifier CE, or the last head's InfoNCE when contrastive)."""
        outs = [jax.lax.stop_gradient(o) for o in outs]
        last = len(outs) - 1

        def top_loss(top):
            p = dict(params, heads=top["heads"], classifier=top["classifier"])
            total, reported = 0.0, None
            blocks = range(len(outs)) if local else ([last] if self.contrastive else [])
            for blk in blocks:
                lb = _mean(self.head_loss(p, outs[blk], blk, self.aux(p, batch, outs2, blk)))
                total = total + lb
                if blk == last:
                    reported = lb
            ce = _mean(self.classifier_loss(p, outs[last], batch["y"])[0])
            return total + ce, reported if self.contrastive else ce

        top = {"heads": params["heads"], "classifier": params["classifier"]}
        (_, reported), g = jax.value_and_grad(top_loss, has_aux=True)(top)
        return g, reported

    def global_loss_vec(self, params, outs, batch, outs2):
        """Per-example global loss [N] through the live last block output."""
        last = len(outs) - 1
        if self.contrastive:
            return self.head_loss(params, outs[last], last, self.aux(params, batch, outs2, last))
        return self.classifier_loss(params, outs[last], batch["y"])[0]

    def local_replicated(self, params, outs, batch, outs2):
        """[N, P, G] replicated losses of every block, each divided by N (batch mean)."""
        out = []
        for blk, o in enumerate(outs):
            h = params["heads"][blk]
            rep = self.replicated(self.objective, self.temperature, head_input(o, self.arch.norm_grad),
                                  h["w"], h["b"], self.aux(params, batch, outs2, blk))
            out.append(rep / o.shape[0])
        return out


def _merge(blocks_grads, top_grads):
    return {"blocks": blocks_grads, "heads": top_grads["heads"], "classifier": top_grads["classifier"]}


def site_param_grads(arch: Arch, params, sites, cot_a):
    """Weight and bias gradients of every layer from the cotangents at its activities a: exact LN
    backward (or identity without post-LN), then the layer's own x^T delta. No signal crosses layers."""
    grads = []
    for blk_sites, blk_cots, layers in zip(sites, cot_a, params["blocks"]):
        blk_grads = []
        for site, cot, layer in zip(blk_sites, blk_cots, layers):
            if arch.post_ln:
                cot = jax.vjp(lambda t: normalize(t, arch.norm, arch.norm_grad), site.z)[1](cot)[0]
            fn = LAYERS[site.kind]
            dw, db = jax.vjp(lambda w, b: fn(site.x_in, w, b), layer["w"], layer["b"])[1](cot)
            blk_grads.append({"w": dw, "b": db})
        grads.append(blk_grads)
    return grads


def _match_groups(arch: Arch, kind, d):
    """Per-(n, p, g) derivatives d [N, P, G] in a shape that broadcasts against a layer's activity:
    [N, P, G, 1] grouped, [N, P, C] channel dense, [N, P, 1] token mixing."""
    if kind == "group":
        return d[..., None]
    if kind == "dense":
        return jnp.repeat(d, arch.D, axis=-1)  # channel c belongs to group c // D
    return jnp.sum(d, axis=-1, keepdims=True)  # token mixing reaches every group of its patch


def _relu_mask(a):
    return (a > 0).astype(a.dtype)


# ---------------------------------------------------------------------------------------------
# the rules


def make_grad_fn(method: str, arch: Arch, objective: str = "supervised", temperature=None,
                 loss_impl: str = "fused"):
    """grads(params, feedback, batch, key) -> (grads like params, {"loss": reported loss})."""
    ctx = _Ctx(method, arch, objective, temperature, loss_impl)
    if method in BACKPROP_FAMILY:
        return _backprop_rule(ctx)
    if method in ("FG-A", "LG-FG-A"):
        return _activity_rule(ctx, local=method == "LG-FG-A")
    if method in ("FG-W", "LG-FG-W"):
        return _weight_rule(ctx, local=method == "LG-FG-W")
    return _dfa_rule(ctx)


def _backprop_rule(ctx: _Ctx):
    method, arch = ctx.method, ctx.arch
    fa = method in FEEDBACK_ALIGNMENT
    local = method not in GLOBAL

    def loss_fn(params, feedback, batch):
        outs2 = ctx.view2_outputs(params, batch)
        linear_fns = None
        if fa:
            linear_fns = [[_bind(_FA[kind], B) for kind, B in zip(arch.layer_kinds(blk), mats)]
                          for blk, mats in enumerate(feedback["blocks"])]
        outs, _ = backbone(arch, params, batch["x"], stop_between_blocks=method in STOP_BETWEEN_BLOCKS,
                           linear_fns=linear_fns)
        last = len(outs) - 1
        head_fn = (lambda blk: _bind(_FA["head"], feedback["heads"][blk])) if fa else (lambda blk: None)
        total, reported = 0.0, None
        blocks = range(len(outs)) if local else ([last] if ctx.contrastive else [])
        for blk in blocks:
            lb = _mean(ctx.head_loss(params, outs[blk], blk, ctx.aux(params, batch, outs2, blk),
                                     linear_fn=head_fn(blk)))
            total = total + lb
            reported = lb
        # Supervised global methods: the classifier is the output layer, its error flows back.
        # Otherwise it reads stop-gradient features (local methods; contrastive readout).
        live = not local and not ctx.contrastive
        feats = outs[last] if live else jax.lax.stop_gradient(outs[last])
        cls_fn = _bind(_FA["head"], feedback["classifier"]) if fa and live else None
        ce = _mean(ctx.classifier_loss(params, feats, batch["y"], linear_fn=cls_fn)[0])
        return total + ce, reported if ctx.contrastive else ce

    def grads(params, feedback, batch, key):
        (_, reported), g = jax.value_and_grad(loss_fn, has_aux=True)(params, feedback, batch)
        return g, {"loss": reported}

    return grads


def _dfa_rule(ctx: _Ctx):
    arch = ctx.arch

    def grads(params, feedback, batch, key):
        outs2 = ctx.view2_outputs(params, batch)
        outs, sites = backbone(arch, params, batch["x"], stop_between_blocks=False)
        last = len(outs) - 1
        n = batch["x"].shape[0]
        # Output error of the batch-mean global loss with respect to the output layer's pre-activations.
        if ctx.contrastive:
            h = params["heads"][last]
            feats = pooled_features(head_input(jax.lax.stop_gradient(outs[last]), arch.norm_grad))
            out = feats @ h["w"] + h["b"]
            tg = ctx.targets(params, outs2, last)
            e = jax.grad(lambda o: _mean(losses.nce_from_projection(o, tg, ctx.temperature)))(out)
        else:
            logits = classifier_logits(params, jax.lax.stop_gradient(outs[last]), arch.norm_grad)
            e = jax.grad(lambda lg: _mean(losses.ce_from_logits(lg, batch["y"])))(logits)
        cot_a = []
        for blk_sites, mats in zip(sites, feedback["blocks"]):
            blk = []
            for site, B in zip(blk_sites, mats):
                delta = (e @ B)[:, None, :]  # [N, 1, C], the same for every patch
                delta = jnp.broadcast_to(delta, (n, arch.P, arch.channels)).reshape(site.a.shape)
                blk.append(delta * _relu_mask(site.a))
            cot_a.append(blk)
        block_grads = site_param_grads(arch, params, sites, cot_a)
        top, reported = ctx.top_grads(params, outs, batch, outs2, local=False)
        return _merge(block_grads, top), {"loss": reported}

    return grads


def _normal_tree(key, shapes):
    """N(0, 1) arrays of the given shapes from ONE random call (one call compiles far faster than
    one per tensor, and is as random: slices of an i.i.d. vector are i.i.d.)."""
    sizes = [math.prod(s) for s in shapes]
    flat = jax.random.normal(key, (sum(sizes),), jnp.float32)
    out, off = [], 0
    for s, k in zip(shapes, sizes):
        out.append(flat[off:off + k].reshape(s))
        off += k
    return out


def _normal_like(key, tree):
    leaves, treedef = jax.tree.flatten(tree)
    return jax.tree.unflatten(treedef, _normal_tree(key, [l.shape for l in leaves]))


def _perturbations(arch: Arch, key, n):
    shapes = site_shapes(arch, n)
    it = iter(_normal_tree(key, [s for blk in shapes for s in blk]))
    return [[next(it) for _ in blk] for blk in shapes]


def _activity_rule(ctx: _Ctx, local: bool):
    """FG-A (global loss) and LG-FG-A (local greedy: stop-gradient between blocks, each layer's
    perturbation matched to its own block's replicated [N, P, G] losses)."""
    arch = ctx.arch

    def grads(params, feedback, batch, key):
        outs2 = ctx.view2_outputs(params, batch)
        n = batch["x"].shape[0]
        u = _perturbations(arch, key, n)
        zeros = jax.tree.map(jnp.zeros_like, u)

        def f(eps):
            outs, sites = backbone(arch, params, batch["x"], stop_between_blocks=local, eps=eps)
            if local:
                return ctx.local_replicated(params, outs, batch, outs2), (outs, sites)
            loss_vec = ctx.global_loss_vec(params, outs, batch, outs2)
            if not GLOBAL_FGA_SUMS_BATCH:
                loss_vec = loss_vec / n
            return loss_vec, (outs, sites)

        _, d, (outs, sites) = jax.jvp(f, (zeros,), (u,), has_aux=True)
        if local:  # d: one [N, P, G] array per block
            scale = [[_match_groups(arch, s.kind, db) for s in sb] for sb, db in zip(sites, d)]
        else:  # d: [N], one directional derivative per example
            scale = [[d.reshape((n,) + (1,) * (ui.ndim - 1)) for ui in ub] for ub in u]
        cot_a = [[c * ui * _relu_mask(s.a) for c, ui, s in zip(cb, ub, sb)]
                 for cb, ub, sb in zip(scale, u, sites)]
        block_grads = site_param_grads(arch, params, sites, cot_a)
        top, reported = ctx.top_grads(params, outs, batch, outs2, local=local)
        return _merge(block_grads, top), {"loss": reported}

    return grads


def _weight_rule(ctx: _Ctx, local: bool):
    """FG-W (one global directional derivative for all block weights) and LG-FG-W (local greedy:
    each output-group slice of a block's weights matched to that group's replicated losses)."""
    arch = ctx.arch

    def grads(params, feedback, batch, key):
        outs2 = ctx.view2_outputs(params, batch)
        v = _normal_like(key, params["blocks"])

        def f(blocks):
            p = dict(params, blocks=blocks)
            outs, _ = backbone(arch, p, batch["x"], stop_between_blocks=local)
            if local:
                return ctx.local_replicated(p, outs, batch, outs2), outs
            return _mean(ctx.global_loss_vec(p, outs, batch, outs2)), outs

        _, d, outs = jax.jvp(f, (params["blocks"],), (v,), has_aux=True)
        if not local:
            block_grads = jax.tree.map(lambda t: d * t, v)
        else:
            block_grads = []
            for blk, (vb, db) in enumerate(zip(v, d)):
                d_group = jnp.sum(db, axis=(0, 1))  # [G]: weights are shared by examples and patches
                g = []
                for kind, vl in zip(arch.layer_kinds(blk), vb):
                    if kind == "token":
                        s = jnp.sum(d_group)
                        g.append({"w": s * vl["w"], "b": s * vl["b"]})
                    elif kind == "dense":
                        per_channel = jnp.repeat(d_group, arch.D)  # output channel c feeds group c // D
                        g.append({"w": vl["w"] * per_channel, "b": vl["b"] * per_channel})
                    else:
                        g.append({"w": vl["w"] * d_group[:, None, None], "b": vl["b"] * d_group[:, None]})
                block_grads.append(g)
        top, reported = ctx.top_grads(params, outs, batch, outs2, local=local)
        return _merge(block_grads, top), {"loss": reported}

    return grads
