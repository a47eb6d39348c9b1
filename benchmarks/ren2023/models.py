"""LocalMixer (Ren et al. 2023, Section 5, Table 2, Fig. 2, Algorithm 2) as plain JAX functions on
explicit parameter dicts, the form of the authors' code (IMPLEMENTATION_NOTES section 1).

Shapes: N batch, P patches (tokens), C channels, G groups, D = C / G channels a group.

    params = {"blocks": [[layer, ...], ...], "heads": [{"w", "b"}, ...], "classifier": {"w", "b"}}
    layer  = {"w", "b"}: dense w [Cin, C]; token-mixing w [P, P], b [P]; grouped w [G, D, D], b [G, D]

- Block 0: channel dense FC (patch dim -> C), then grouped FC; no token mixing, no residual.
  Blocks >= 1: token-mixing FC (P x P, shared over channels), channel dense FC (C -> C), grouped FC
  (G independent D -> D), residual add of the block input before the last ReLU (Algorithm 2).
- Every FC is linear -> [LN] -> ReLU; LN has no gain or bias (notes: `post_linear_ln`).
  ``ln_place`` (Table 6): "before_after" = LN on the block input, before every later linear layer and
  after every linear layer (Fig. 2, Algorithm 2); "begin_block" = block input only (MLPMixer);
  "before_linear" = block input + before every linear layer; "after_linear" = after every linear layer.
- ``norm`` (Table 5): "local_ln" normalises the channels of each patch, and each group separately
  where the tensor is grouped (Section 5; Algorithm 2's ``normalize(x)`` on the last axis); "ln" all
  non-batch axes; "bn" the batch axis (per feature, batch statistics also at test time: the authors'
  functional code keeps no running averages). ``norm_grad`` False stops gradients (and tangents)
  through the statistics: Table 5's "NG".
- Local head of block l (Eqs. 4-5, Algorithm 2): LN over the last axis of the block output (always
  per patch and group, as Algorithm 2's ``x_proj = normalize(x)``), then the replicated aggregation
  and ONE linear layer shared over patches and groups: C -> K classes, or C -> proj_dim for the
  contrastive objective (losses.py).
- Final classifier (Algorithm 2): mean over patches, LN, linear; zero-initialised (notes).
- Init (notes, cfg "kaiming"): w ~ N(0, 1) * min(2 / sqrt(fan_in), 0.1), biases 0.

Table 2 parameter counts (checked by tests/test_ren_engine.py with ``count_params``):
S/1/1 271,892 (272K), M/1/16 429,076 (429K), M/8/16 918,770 (919K), L/8/64 13,074,674 (13.1M) count
the backbone, the four (or one) 10-class block heads and the final classifier, all with biases.
L/32/64 (ImageNet, 1000 classes) cannot be counted the same way: that gives 26.6M (18.4M without
heads, 16.3M without heads and classifier). 17.3M is matched by the backbone plus the four
128-d contrastive projection heads (17,360,384, 0.35% off; without biases 17,340,416): Table 2's
ImageNet figure evidently counts the contrastive model, without the readout.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

NORMS = ("local_ln", "ln", "bn")
LN_PLACES = ("before_after", "begin_block", "before_linear", "after_linear")
LN_EPS = 1e-5  # Algorithm 2's normalize()
INIT_STD_CAP = 0.1  # notes: N(0,1) * min(2/sqrt(fan_in), 0.1)

# Table 2, with the published parameter counts. image_size / in_channels / classes from the dataset.
TABLE2 = {
    "S/1/1": dict(num_blocks=1, patch_grid=1, channels=256, groups=1, image_size=28, in_channels=1,
                  n_classes=10, published="272K"),
    "M/1/16": dict(num_blocks=1, patch_grid=1, channels=512, groups=16, image_size=28, in_channels=1,
                   n_classes=10, published="429K"),
    "M/8/16": dict(num_blocks=4, patch_grid=8, channels=512, groups=16, image_size=32, in_channels=3,
                   n_classes=10, published="919K"),
    "L/8/64": dict(num_blocks=4, patch_grid=8, channels=2048, groups=64, image_size=32, in_channels=3,
                   n_classes=10, published="13.1M"),
    "L/32/64": dict(num_blocks=4, patch_grid=32, channels=2048, groups=64, image_size=224,
                    in_channels=3, n_classes=1000, published="17.3M"),
}


class Arch:
    """The shape facts of one LocalMixer, from a run config (or a TABLE2 entry)."""

    def __init__(self, *, num_blocks, patch_grid, channels, groups, image_size, in_channels,
                 n_classes, head_dim=None, norm="local_ln", norm_grad=True, ln_place="before_after"):
        if channels % groups:
            raise ValueError(f"channels {channels} not divisible by groups {groups}")
        if image_size % patch_grid:
            raise ValueError(f"image_size {image_size} not divisible by patch_grid {patch_grid}")
        self.num_blocks, self.patch_grid = int(num_blocks), int(patch_grid)
        self.channels, self.groups = int(channels), int(groups)
        self.image_size, self.in_channels, self.n_classes = int(image_size), int(in_channels), int(n_classes)
        self.head_dim = int(head_dim or n_classes)  # K for supervised heads, proj_dim for contrastive
        self.norm, self.norm_grad, self.ln_place = norm, bool(norm_grad), ln_place
        self.P = self.patch_grid ** 2
        self.D = self.channels // self.groups
        self.patch_dim = (self.image_size // self.patch_grid) ** 2 * self.in_channels
        self.begin_ln = ln_place in ("before_after", "begin_block", "before_linear")
        self.middle_ln = ln_place in ("before_after", "before_linear")
        self.post_ln = ln_place in ("before_after", "after_linear")

    @classmethod
    def from_config(cls, config: dict, n_classes: int, in_channels: int) -> "Arch":
        contrastive = config["objective"] == "contrastive"
        return cls(num_blocks=config["num_blocks"], patch_grid=config["patch_grid"],
                   channels=config["channels"], groups=config["groups"], image_size=config["image_size"],
                   in_channels=in_channels, n_classes=n_classes,
                   head_dim=config["proj_dim"] if contrastive else n_classes,
                   norm=config["norm"], norm_grad=config["norm_grad"], ln_place=config["ln_place"])

    def layer_kinds(self, block: int) -> tuple[str, ...]:
        return ("dense", "group") if block == 0 else ("token", "dense", "group")

    def layer_shapes(self, block: int, kind: str):
        """((w shape, fan_in), b shape) of one layer."""
        C, D, G, P = self.channels, self.D, self.groups, self.P
        if kind == "token":
            return ((P, P), P), (P,)
        if kind == "dense":
            cin = self.patch_dim if block == 0 else C
            return ((cin, C), cin), (C,)
        return ((G, D, D), D), (G, D)


# ---------------------------------------------------------------------------------------------
# parameters


def param_shapes(arch: Arch) -> dict:
    """The parameter tree as shapes (tuples), without allocating anything."""
    blocks = []
    for blk in range(arch.num_blocks):
        blocks.append([dict(zip(("w", "b"), (arch.layer_shapes(blk, k)[0][0], arch.layer_shapes(blk, k)[1])))
                       for k in arch.layer_kinds(blk)])
    heads = [{"w": (arch.channels, arch.head_dim), "b": (arch.head_dim,)} for _ in range(arch.num_blocks)]
    return {"blocks": blocks, "heads": heads,
            "classifier": {"w": (arch.channels, arch.n_classes), "b": (arch.n_classes,)}}


def init_params(arch: Arch, seed) -> dict:
    """Backbone, heads and zero-initialised classifier (float32 jax arrays), drawn with numpy's
    generator like the authors' code (no per-tensor XLA compilation of random ops)."""
    rng = np.random.default_rng(seed)

    def weight(shape, fan_in):
        return jnp.asarray(min(2.0 / math.sqrt(fan_in), INIT_STD_CAP) * rng.standard_normal(shape, np.float32))

    blocks = []
    for blk in range(arch.num_blocks):
        layers = []
        for kind in arch.layer_kinds(blk):
            (w_shape, fan_in), b_shape = arch.layer_shapes(blk, kind)
            layers.append({"w": weight(w_shape, fan_in), "b": jnp.zeros(b_shape, jnp.float32)})
        blocks.append(layers)
    heads = [{"w": weight((arch.channels, arch.head_dim), arch.channels),
              "b": jnp.zeros((arch.head_dim,), jnp.float32)} for _ in range(arch.num_blocks)]
    classifier = {"w": jnp.zeros((arch.channels, arch.n_classes), jnp.float32),
                  "b": jnp.zeros((arch.n_classes,), jnp.float32)}
    return {"blocks": blocks, "heads": heads, "classifier": classifier}


def count_params(tree) -> int:
    """Number of scalars in a parameter tree of arrays, or of shape tuples (``param_shapes``)."""
    is_shape = lambda t: isinstance(t, tuple) and all(isinstance(d, int) for d in t)  # noqa: E731
    return int(sum(np.prod(leaf if is_shape(leaf) else leaf.shape)
                   for leaf in jax.tree.leaves(tree, is_leaf=is_shape)))


def table2_count(name: str, objective: str = "supervised", proj_dim: int = 128) -> int:
    """Parameter count of a Table 2 arch from shapes only (no allocation). Supervised: backbone,
    10- or 1000-class heads and classifier; contrastive: backbone and proj_dim heads (no readout)."""
    spec = {k: v for k, v in TABLE2[name].items() if k != "published"}
    shapes = param_shapes(Arch(**spec, head_dim=proj_dim if objective == "contrastive" else None))
    if objective == "contrastive":
        shapes = {"blocks": shapes["blocks"], "heads": shapes["heads"]}
    return count_params(shapes)


# ---------------------------------------------------------------------------------------------
# layers


def dense(x, w, b):
    """Channel-mixing FC on [N, P, Cin] -> [N, P, C]."""
    return jnp.einsum("npi,io->npo", x, w) + b


def token_mix(x, w, b):
    """Token-mixing FC on [N, P, C]: mixes patches with one P x P matrix shared over channels
    (Algorithm 2 transposes, applies linear(), transposes back)."""
    return jnp.einsum("nqc,qp->npc", x, w) + b[None, :, None]


def group_linear(x, w, b):
    """Grouped FC on [N, P, G, D]: each group has its own D x D matrix (Section 4, 3)."""
    return jnp.einsum("npgd,gde->npge", x, w) + b


LAYERS = {"dense": dense, "token": token_mix, "group": group_linear}


def normalize(x, kind: str, norm_grad: bool):
    """Algorithm 2's normalize(): (x - mean) * rsqrt(var + eps), no gain or bias.
    local_ln: last axis; ln: all non-batch axes; bn: the batch axis."""
    if kind == "local_ln":
        axes = (x.ndim - 1,)
    elif kind == "ln":
        axes = tuple(range(1, x.ndim))
    elif kind == "bn":
        axes = (0,)
    else:
        raise ValueError(f"unknown norm {kind!r}")
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x), axis=axes, keepdims=True) - jnp.square(mean)
    inv = jax.lax.rsqrt(jnp.maximum(var, 0.0) + LN_EPS)
    if not norm_grad:  # Table 5 "NG": the statistics are constants for gradients and tangents
        mean, inv = jax.lax.stop_gradient(mean), jax.lax.stop_gradient(inv)
    return (x - mean) * inv


def layer_norm_last(x, norm_grad: bool = True):
    return normalize(x, "local_ln", norm_grad)


# ---------------------------------------------------------------------------------------------
# forward pass


def patchify(images, patch_grid: int):
    """[N, H, W, C] float -> [N, P, patch_h * patch_w * C], patches row-major, pixels flattened (h, w, c)."""
    n, h, w, c = images.shape
    ph, pw = h // patch_grid, w // patch_grid
    x = images.reshape(n, patch_grid, ph, patch_grid, pw, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, patch_grid * patch_grid, ph * pw * c)


@jax.tree_util.register_pytree_node_class
class Site:
    """One FC layer as seen by the local rules: its input (after any pre-LN), its linear output z
    and the activity a that the ReLU reads (after post-LN and the residual add). Activity
    perturbation (FG-A) and direct feedback (DFA) inject their signal at a."""

    __slots__ = ("block", "kind", "x_in", "z", "a")

    def __init__(self, block, kind, x_in, z, a):
        self.block, self.kind, self.x_in, self.z, self.a = block, kind, x_in, z, a

    def tree_flatten(self):  # a pytree, so sites can leave jax.jvp as auxiliary outputs
        return (self.x_in, self.z, self.a), (self.block, self.kind)

    @classmethod
    def tree_unflatten(cls, static, children):
        return cls(*static, *children)


def block_forward(arch: Arch, layers, h, blk, *, eps=None, linear_fns=None):
    """One mixer block. h: [N, P, Din] for block 0, [N, P, G, D] after. Returns (output [N,P,G,D],
    sites). ``eps``: per-layer additive perturbations at the activities a (FG-A); ``linear_fns``:
    per-layer replacements of the linear functions (feedback alignment)."""
    n = h.shape[0]
    G, D, P, C = arch.groups, arch.D, arch.P, arch.channels
    norm = lambda t: normalize(t, arch.norm, arch.norm_grad)  # noqa: E731
    residual = h if blk > 0 else None
    sites = []
    for j, kind in enumerate(arch.layer_kinds(blk)):
        if kind == "group":
            h = h.reshape(n, P, G, D)
        elif h.ndim == 4:
            h = h.reshape(n, P, C)
        if (j == 0 and arch.begin_ln) or (j > 0 and arch.middle_ln):
            h = norm(h)
        x_in = h
        fn = LAYERS[kind] if linear_fns is None else linear_fns[j]
        z = fn(x_in, layers[j]["w"], layers[j]["b"])
        a = norm(z) if arch.post_ln else z
        if residual is not None and kind == "group":
            a = a + residual
        if eps is not None:
            a = a + eps[j]
        sites.append(Site(blk, kind, x_in, z, a))
        h = jax.nn.relu(a)
    return h, sites


def site_shapes(arch: Arch, n: int):
    """Activity shapes of every layer, block by block (for drawing perturbations)."""
    out = []
    for blk in range(arch.num_blocks):
        out.append([(n, arch.P, arch.groups, arch.D) if k == "group" else (n, arch.P, arch.channels)
                    for k in arch.layer_kinds(blk)])
    return out


def backbone(arch: Arch, params, x, *, stop_between_blocks: bool, eps=None, linear_fns=None):
    """All blocks on patches x [N, P, patch_dim]. Returns (block outputs [N,P,G,D] before any stop,
    sites per block). With ``stop_between_blocks`` each block reads a stop-gradient input (the
    local greedy methods; notes: `stop_every` 1, the head reads the output before the stop)."""
    outs, all_sites, h = [], [], x
    for blk, layers in enumerate(params["blocks"]):
        h, sites = block_forward(arch, layers, h, blk,
                                 eps=None if eps is None else eps[blk],
                                 linear_fns=None if linear_fns is None else linear_fns[blk])
        outs.append(h)
        all_sites.append(sites)
        if stop_between_blocks:
            h = jax.lax.stop_gradient(h)
    return outs, all_sites


def pooled_features(block_out):
    """Mean over patches of a block output [N,P,G,D] -> [N, C]."""
    n, p = block_out.shape[:2]
    return jnp.mean(block_out.reshape(n, p, -1), axis=1)


def classifier_logits(params, block_out, norm_grad=True, linear_fn=None):
    """Final classifier (Algorithm 2): mean-pool, LN, linear."""
    feats = layer_norm_last(pooled_features(block_out), norm_grad)
    if linear_fn is None:
        return feats @ params["classifier"]["w"] + params["classifier"]["b"]
    return linear_fn(feats, params["classifier"]["w"], params["classifier"]["b"])


def head_input(block_out, norm_grad=True):
    """The local head's LN: Algorithm 2's ``x_proj = normalize(x)``, per patch and group. Like every
    LN it follows ``norm_grad`` (Table 5's "NG" = no normalisation gradient anywhere)."""
    return layer_norm_last(block_out, norm_grad)
