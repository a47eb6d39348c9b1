"""BYOL/SimCLR-style image augmentations in JAX (no torchvision), on float images [N, H, W, C] in [0, 1].

Paper, Section 6 "Data augmentation": ImageNet follows BYOL (Grill et al. 2020); contrastive runs use
weaker crops (area lower bound 0.3-0.5 instead of 0.08; the config's ``crop_area_min``). Notes on the
authors' code: flip, colour jitter (brightness .4, contrast .4, saturation .2, hue .1; p .8),
grayscale p .2, solarisation of view 2 with p .2, blur 1.0 / 0.1.

Choices here: the jitter operations run in a fixed order (BYOL shuffles them); hue is rotated in YIQ
space (an approximation of torchvision's HSV hue shift); Gaussian blur is not applied (the notes
list it for the ImageNet pipeline only; CIFAR BYOL pipelines omit it). This is a known deviation
for ImageNet contrastive runs (Table 4's ImageNet column). Streamed full-scale ImageNet batches are
cropped and flipped while decoding (benchmarks.data.decode_batch) and get only the colour
operations here. One-channel images get crop, flip, brightness and contrast only.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

JITTER = (0.4, 0.4, 0.2, 0.1)  # brightness, contrast, saturation, hue
P_JITTER, P_GRAY, P_SOLARIZE_VIEW2 = 0.8, 0.2, 0.2
_LUMA = jnp.array([0.299, 0.587, 0.114])


def _bilinear_crop(img, top, left, h, w, out_h, out_w):
    """Resample the box (top, left, h, w) of img [H, W, C] to [out_h, out_w, C] bilinearly."""
    H, W, _ = img.shape
    ys = jnp.clip(top + (jnp.arange(out_h) + 0.5) * h / out_h - 0.5, 0, H - 1)
    xs = jnp.clip(left + (jnp.arange(out_w) + 0.5) * w / out_w - 0.5, 0, W - 1)
    y0 = jnp.floor(ys).astype(jnp.int32)
    x0 = jnp.floor(xs).astype(jnp.int32)
    y1, x1 = jnp.minimum(y0 + 1, H - 1), jnp.minimum(x0 + 1, W - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    a, b = img[y0][:, x0], img[y0][:, x1]
    c, d = img[y1][:, x0], img[y1][:, x1]
    return (a * (1 - wx) + b * wx) * (1 - wy) + (c * (1 - wx) + d * wx) * wy


def random_resized_crop(key, img, area_min: float):
    """torchvision-style RandomResizedCrop (scale (area_min, 1), ratio (3/4, 4/3)), one attempt,
    the box clipped to the image."""
    H, W, _ = img.shape
    k1, k2, k3, k4 = jax.random.split(key, 4)
    area = jax.random.uniform(k1, minval=area_min, maxval=1.0) * H * W
    log_r = jax.random.uniform(k2, minval=math.log(3 / 4), maxval=math.log(4 / 3))
    ratio = jnp.exp(log_r)
    w = jnp.clip(jnp.sqrt(area * ratio), 1.0, W)
    h = jnp.clip(jnp.sqrt(area / ratio), 1.0, H)
    top = jax.random.uniform(k3) * (H - h)
    left = jax.random.uniform(k4) * (W - w)
    return _bilinear_crop(img, top, left, h, w, H, W)


def _gray(img):
    return jnp.sum(img * _LUMA, axis=-1, keepdims=True)


def _hue_rotate(img, angle):
    yiq = jnp.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    rgb = jnp.linalg.inv(yiq)
    c, s = jnp.cos(angle), jnp.sin(angle)
    rot = jnp.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return img @ (rgb @ rot @ yiq).T


def color_jitter(key, img):
    kb, kc, ks, kh = jax.random.split(key, 4)
    b, c, s, h = JITTER
    img = img * jax.random.uniform(kb, minval=1 - b, maxval=1 + b)
    mean = jnp.mean(_gray(img) if img.shape[-1] == 3 else img)
    img = jnp.clip((img - mean) * jax.random.uniform(kc, minval=1 - c, maxval=1 + c) + mean, 0, 1)
    if img.shape[-1] == 3:
        g = _gray(img)
        img = jnp.clip((img - g) * jax.random.uniform(ks, minval=1 - s, maxval=1 + s) + g, 0, 1)
        img = jnp.clip(_hue_rotate(img, jax.random.uniform(kh, minval=-h, maxval=h) * 2 * math.pi), 0, 1)
    return img


def augment_one(key, img, area_min: float, solarize_p: float):
    kc, kf, kj, kpj, kg, ks = jax.random.split(key, 6)
    img = random_resized_crop(kc, img, area_min)
    img = jnp.where(jax.random.uniform(kf) < 0.5, img[:, ::-1], img)
    img = jnp.where(jax.random.uniform(kpj) < P_JITTER, color_jitter(kj, img), img)
    if img.shape[-1] == 3:
        img = jnp.where(jax.random.uniform(kg) < P_GRAY, jnp.broadcast_to(_gray(img), img.shape), img)
    img = jnp.where(jax.random.uniform(ks) < solarize_p, jnp.where(img < 0.5, img, 1.0 - img), img)
    return img


def augment_batch(key, images, area_min: float, view: int = 1):
    """One augmented view of every image of [N, H, W, C]; view 2 may be solarised (BYOL)."""
    keys = jax.random.split(key, images.shape[0])
    solarize_p = P_SOLARIZE_VIEW2 if view == 2 else 0.0
    return jax.vmap(lambda k, im: augment_one(k, im, area_min, solarize_p))(keys, images)
