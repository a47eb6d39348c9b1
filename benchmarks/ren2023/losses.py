"""Local losses of Ren et al. (2023) with the replicated feature aggregation (Section 4, Eqs. 4-6).

A block output x [N, P, G, D] feeds one loss per patch p and group g: L[n, p, g] reads the features
pooled over patches and concatenated over groups, where only patch p / group g carries gradient
(every other slice is a stop-gradient copy, Eqs. 4-5). All P*G losses have the same value; they
differ in which slice of x their derivative sees. Three implementations:

- ``naive_replicated``: the explicit construction of Eqs. 4-5 ([N, P, G, C] replicated features,
  [N, P, G] losses): the reference, memory O(N P G C).
- ``fused_replicated``: Algorithm 1 / Appendix 12: computes one loss per example and tiles it; a
  ``jax.custom_jvp`` rule gives the [N, P, G] directional derivatives directly,
  d[n,p,g] = <dx[n,p,g] / P, dl_n/dpool_n[g]> + (head-parameter term), without replicating anything.
  The rule is linear in the tangents, so JAX transposes it for reverse mode: ``jax.grad`` through it
  tiles dl/dpool over patches, as the authors' custom VJP does (their fused VJP; one custom_jvp
  rule serves both here, since JAX allows one custom rule a function).
- ``pooled_loss``: the conventional head (pool, concat, linear, loss) giving [N]. Summed over (p, g),
  the replicated losses have exactly this function's gradient with respect to x (each slice gets its
  own loss's derivative), and P*G times its gradient with respect to the head; backprop-based rules
  (BP, L-BP, LG-BP, FA family) therefore use it directly, with exact head gradients.

Per-example losses (``l_n`` depends on example n's pooled features only, which the fused rule needs):
- supervised: cross-entropy of a linear classifier, L^s_{p,g} of Section 4.
- contrastive: InfoNCE of Eq. 6 on L2-normalised projections (notes: heads -> 128, L2-norm) with
  temperature tau, exp(<z1_n, sg(z2_m)> / tau) over the view-2 embeddings m of the batch, the
  positive included. View 2 is a stop-gradient target (Eq. 6; notes: `simclr_sg`), so the loss is
  one-directional as printed.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def ce_from_logits(logits, onehot):
    return -jnp.sum(jax.nn.log_softmax(logits, axis=-1) * onehot, axis=-1)


def _cross_entropy(pooled, w, b, onehot, linear_fn=None):
    return ce_from_logits(pooled @ w + b if linear_fn is None else linear_fn(pooled, w, b), onehot)


def l2_normalize(z, eps=1e-12):
    return z * jax.lax.rsqrt(jnp.sum(jnp.square(z), axis=-1, keepdims=True) + eps)


def project(pooled, w, b, linear_fn=None):
    """Contrastive projection: linear head then L2 normalisation."""
    return l2_normalize(pooled @ w + b if linear_fn is None else linear_fn(pooled, w, b))


def nce_from_projection(h, targets, temperature):
    """InfoNCE (Eq. 6) of raw projections h [N, k] against stop-gradient unit targets [N, k]."""
    logits = l2_normalize(h) @ jax.lax.stop_gradient(targets).T / temperature
    return -jnp.diagonal(jax.nn.log_softmax(logits, axis=-1))


def _info_nce(pooled, w, b, targets, temperature, linear_fn=None):
    return nce_from_projection(pooled @ w + b if linear_fn is None else linear_fn(pooled, w, b),
                               targets, temperature)


def per_example_loss(objective: str, temperature: float | None = None):
    """l(pooled [N, C], w, b, aux, linear_fn=None) -> [N]; aux = one-hot labels or view-2 targets."""
    if objective == "supervised":
        return _cross_entropy
    if objective == "contrastive":
        return functools.partial(_info_nce, temperature=float(temperature))
    raise ValueError(f"unknown objective {objective!r}")


def _flat_pool(x):
    n, p = x.shape[:2]
    return jnp.mean(x.reshape(n, p, -1), axis=1)


def pooled_loss(objective, temperature, x, w, b, aux, linear_fn=None):
    """Conventional aggregation (Fig. 3A): [N, P, G, D] -> [N] losses."""
    return per_example_loss(objective, temperature)(_flat_pool(x), w, b, aux, linear_fn=linear_fn)


def naive_replicated(objective, temperature, x, w, b, aux):
    """Eqs. 4-5 built explicitly: [N, P, G, D] -> [N, P, G] losses."""
    n, p, g, d = x.shape
    sg = jax.lax.stop_gradient
    live = x - sg(x)  # zero in value, carries x's derivative
    own_group = jnp.eye(g, dtype=x.dtype)[None, None, :, :, None]  # [1,1,G(loss),G(slot),1]
    # Eq. 4: x_{p,g} = concat over groups g' of x_{p,g'}, stop-gradient unless g' == g.
    x_pg = sg(x)[:, :, None] + own_group * live[:, :, None]  # [N, P, G, G, D]
    # Eq. 5: average over patches, every patch but p through a stop-gradient.
    avg = (x_pg - sg(x_pg) + jnp.sum(sg(x_pg), axis=1, keepdims=True)) / p
    pooled = avg.reshape(n, p, g, g * d)
    loss = per_example_loss(objective, temperature)
    flat = loss(pooled.reshape(n * p * g, g * d), w, b, jnp.repeat(aux, p * g, axis=0)) \
        if objective == "supervised" else _naive_nce(pooled, w, b, aux, temperature)
    return flat.reshape(n, p, g)


def _naive_nce(pooled, w, b, targets, temperature):
    """InfoNCE of every replicated copy; copy (n, p, g) contrasts with all view-2 targets."""
    z = l2_normalize(jnp.einsum("npgc,ck->npgk", pooled, w) + b)
    logits = jnp.einsum("npgk,mk->npgm", z, jax.lax.stop_gradient(targets)) / temperature
    logp = jax.nn.log_softmax(logits, axis=-1)
    n = pooled.shape[0]
    return -logp[jnp.arange(n), :, :, jnp.arange(n)]


@functools.lru_cache(maxsize=None)
def fused_replicated_fn(objective: str, temperature: float | None = None):
    """The fused replicated loss f(x, w, b, aux) -> [N, P, G] for one objective (Algorithm 1)."""
    loss = per_example_loss(objective, temperature)

    @jax.custom_jvp
    def fused(x, w, b, aux):
        n, p, g, _ = x.shape
        per_ex = loss(_flat_pool(x), w, b, jax.lax.stop_gradient(aux))
        return jnp.broadcast_to(per_ex[:, None, None], (n, p, g))

    @fused.defjvp
    def fused_jvp(primals, tangents):
        x, w, b, aux = primals
        dx, dw, db, _ = tangents
        n, p, g, d = x.shape
        aux = jax.lax.stop_gradient(aux)
        pooled = _flat_pool(x)
        per_ex, pull = jax.vjp(lambda q: loss(q, w, b, aux), pooled)
        # l_n depends on pooled_n only, so the gradient of the sum holds every per-example gradient.
        (dl_dpool,) = pull(jnp.ones_like(per_ex))
        dl_dpool = dl_dpool.reshape(n, g, d)
        # One slice (p, g) of the tangent reaches loss (p, g) only, through its 1/P share of the pool.
        d_slices = jnp.einsum("npgd,ngd->npg", dx, dl_dpool) / p
        _, d_head = jax.jvp(lambda w_, b_: loss(pooled, w_, b_, aux), (w, b), (dw, db))
        out = jnp.broadcast_to(per_ex[:, None, None], (n, p, g))
        return out, d_slices + d_head[:, None, None]

    return fused


def fused_replicated(objective, temperature, x, w, b, aux):
    return fused_replicated_fn(objective, None if temperature is None else float(temperature))(x, w, b, aux)
