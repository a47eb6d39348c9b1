"""Train one Ren et al. (2023) run: ``train(config) -> {"metrics", "data", "device", "versions"}``.

The dataset sits on the device as uint8 [N, H, W, C]; each jitted step normalises (mean/std),
augments where the config says so, patchifies, estimates gradients with the config's rule
(rules.py) and applies the optimiser. Randomness is a pure function of the config's seed: init
and feedback matrices from numpy generators seeded by [seed, 0] / [seed, 1], step noise and
augmentations from fold_in(key(seed), step), the epoch's shuffle from numpy's default_rng([seed, epoch]); a resumed run
therefore replays exactly what an uninterrupted one does.

Constants that no table varies (sources in IMPLEMENTATION_NOTES section 1 unless said otherwise):
- LAST_LAYER_LR_MULT 0.1: the final classifier's lr multiplier (`last_layer_lr`).
- HEAD_LR_MULT 1.0: the block heads' multiplier (`head_lr`; the notes give no value, 1 assumed).
- Init: models.init_params and rules.init_feedback draw with numpy from [seed, 0] / [seed, 1].
- weight decay (config) on weights only, not biases (wd * w added to weight grads); contrastive runs
  also exempt the heads (notes: "no wd on heads/biases"); no decay on the readout.
- Contrastive readout: a linear classifier on stop-gradient features of view 1 (augmented, as in
  SimCLR's online linear evaluation), trained in the same step ("one epoch per epoch"), SGD at
  ``readout_lr`` with the config's momentum, constant lr; its errors are the reported metrics.
- Normalisation statistics: CIFAR's (notes, mixer_lib) for 3-channel data; MNIST's (0.1307, 0.3081)
  for 1-channel data (the paper gives none).
- Batches: shuffled every epoch, the last incomplete batch dropped (fixed shapes for jit).

Full-scale ImageNet (dataset "imagenet", n_train None, real files) does not fit in memory and is
streamed instead (``_Streamed``; everything else is ``_InMemory``, the same step, optimiser, schedule,
checkpoints and metrics): ``benchmarks.data.folder_index`` lists train and val once, each epoch
visits the train images in the same shuffled order as the in-memory path (default_rng([seed,
epoch])), and ``decode_batch`` decodes each batch in a background thread pool (os.cpu_count()
workers, PIL releases the GIL; a few batches decoded ahead). Differences from the in-memory path:
- Train batches get their random-resized crop (area >= ``crop_area_min``) and flip from
  ``decode_batch(train=True)`` with numpy's default_rng([seed, epoch, batch, view]) (so a resumed run
  decodes the same crops); with augment "byol" the jitted step then applies only the BYOL colour
  operations (jitter p .8, grayscale p .2, solarisation of view 2), with the same keys as the
  in-memory augmentation. Contrastive runs decode each batch twice (two crops, views 1 and 2).
  With augment "none" train batches are decoded like eval ones.
- Eval images: ``decode_batch(train=False, crop_fraction=0.875)`` (resize to S/0.875, centre crop
  S: the authors' 224/256). Test error is over the whole val split (a stratified subset when
  n_test is set); train error over a fixed stratified subset of TRAIN_ERR_SUBSET (10,000) train
  images, the same for every run (data seed 0), since decoding 1.28 M images each time is too slow.
"""

from __future__ import annotations

import collections
import functools
import math
import os
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from benchmarks import data
from benchmarks.suite.errors import SpecError

LAST_LAYER_LR_MULT = 0.1
HEAD_LR_MULT = 1.0
EVAL_BATCH = 500
TRAIN_ERR_SUBSET = 10_000  # streamed runs: train error on this many train images (stratified, fixed)
EVAL_CROP = 0.875  # streamed eval decode: resize to S / 0.875, centre crop S (Ren et al.'s 224/256)
MEAN_STD = {3: ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)), 1: ((0.1307,), (0.3081,))}


def _check(config: dict) -> None:
    from .rules import METHODS

    for key in ("dataset", "data_source", "method", "objective", "seed", "num_blocks", "patch_grid",
                "channels", "groups", "image_size", "norm", "norm_grad", "ln_place", "optimizer", "lr",
                "momentum", "weight_decay", "batch_size", "epochs", "schedule", "augment"):
        if key not in config:
            raise SpecError(f"ren2023 run config: missing key {key!r}")
    if config["method"] not in METHODS:
        raise SpecError(f"ren2023 run config: unknown method {config['method']!r}; known: {', '.join(METHODS)}")


def _streams(config: dict) -> bool:
    """Full-scale real ImageNet is streamed from its files; everything else is loaded into memory."""
    return (config["dataset"] == "imagenet" and config.get("n_train") is None
            and config["data_source"] != "synthetic")


def describe_device() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform} ({d.device_kind})" if d.platform != "cpu" else f"cpu ({os.cpu_count()} cores)"


# ---------------------------------------------------------------------------------------------
# the jitted step and evaluation, cached by everything they depend on


def _arch(config, n_classes, in_channels):
    from .models import Arch

    return Arch.from_config(config, n_classes, in_channels)


def _setting(config, n_classes, in_channels, steps_per_epoch, streamed=False) -> tuple:
    keys = ("method", "objective", "num_blocks", "patch_grid", "channels", "groups", "image_size", "norm",
            "norm_grad", "ln_place", "optimizer", "lr", "momentum", "weight_decay", "epochs", "schedule",
            "warmup_epochs", "augment", "crop_area_min", "temperature", "proj_dim", "readout_lr", "xla_opt_level")
    return tuple((k, config.get(k)) for k in keys) + (("n_classes", n_classes), ("in_channels", in_channels),
                                                      ("steps_per_epoch", steps_per_epoch),
                                                      ("streamed", streamed))


def _scale_by_tree(factors):
    """Multiply each update by a per-leaf constant (lr multipliers of heads and classifier)."""
    import jax
    import optax

    def update(updates, state, params=None):
        return jax.tree.map(lambda u, f: u * f, updates, factors), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config, params, steps_per_epoch):
    import jax
    import optax

    lr, total = float(config["lr"]), max(int(config["epochs"]) * steps_per_epoch, 1)
    if config["schedule"] == "linear":
        schedule = lambda step: lr * (1.0 - step / total)  # noqa: E731 (linear decay to 0, notes)
    elif config["schedule"] == "warmup_cosine":
        warm = int(config.get("warmup_epochs") or 0) * steps_per_epoch
        schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(warm, 0), max(total, warm + 1), 0.0)
    else:
        raise SpecError(f"ren2023 run config: unknown schedule {config['schedule']!r}; use linear or warmup_cosine")
    contrastive = config["objective"] == "contrastive"
    # Supervised: one optimiser over everything. Contrastive: the readout (classifier) has its own.
    main_keys = ("blocks", "heads") if contrastive else ("blocks", "heads", "classifier")
    factors = {"blocks": jax.tree.map(lambda _: 1.0, params["blocks"]),
               "heads": jax.tree.map(lambda _: HEAD_LR_MULT, params["heads"]),
               "classifier": jax.tree.map(lambda _: LAST_LAYER_LR_MULT, params["classifier"])}
    decay_mask = {"blocks": [[{"w": True, "b": False} for _ in blk] for blk in params["blocks"]],
                  "heads": [{"w": not contrastive, "b": False} for _ in params["heads"]],
                  "classifier": {"w": True, "b": False}}
    pick = lambda tree: {k: tree[k] for k in main_keys}  # noqa: E731
    wd, mom = float(config["weight_decay"]), float(config["momentum"]) or None
    if config["optimizer"] == "sgd":
        main = optax.chain(optax.add_decayed_weights(wd, mask=pick(decay_mask)), optax.sgd(schedule, momentum=mom))
    elif config["optimizer"] == "lars":
        main = optax.lars(schedule, weight_decay=wd, weight_decay_mask=pick(decay_mask),
                          trust_ratio_mask=pick(decay_mask), momentum=float(config["momentum"]))
    else:
        raise SpecError(f"ren2023 run config: unknown optimizer {config['optimizer']!r}; use sgd or lars")
    main = optax.chain(main, _scale_by_tree(pick(factors)))
    readout = optax.sgd(float(config["readout_lr"]), momentum=mom) if contrastive else None
    return _split(main, readout, main_keys)


def _split(main, readout, main_keys):
    """``main`` on the params under ``main_keys``, ``readout`` (if any) on the classifier."""
    import optax

    def part(tree):
        return {k: tree[k] for k in main_keys}

    def init(params):
        return (main.init(part(params)), readout.init(params["classifier"]) if readout else optax.EmptyState())

    def update(updates, state, params=None):
        u_main, s_main = main.update(part(updates), state[0], part(params))
        out = dict(u_main)
        s_read = state[1]
        if readout:
            out["classifier"], s_read = readout.update(updates["classifier"], state[1], params["classifier"])
        return out, (s_main, s_read)

    return optax.GradientTransformation(init, update)


CACHE_ENV = "FGBENCH_JAX_CACHE"


def compilation_cache_dir() -> str | None:
    where = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "fgbench", "jax")
    return None if where.lower() in ("off", "0", "none") else where


@functools.lru_cache(maxsize=1)
def enable_compilation_cache() -> str | None:
    """Keep XLA's compiled programs on disk, so that the same step compiled by another process
    (a worker of ``--jobs``, the next invocation, a SLURM job on the same file system) is loaded
    instead of compiled again: $FGBENCH_JAX_CACHE, default ~/.cache/fgbench/jax; ``off`` disables.
    Returns the folder in use (None: disabled or not writable)."""
    import jax

    where = compilation_cache_dir()
    if where is None:
        return None
    try:
        os.makedirs(where, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile every time, as before
    jax.config.update("jax_compilation_cache_dir", where)
    # Every program: the smoke runs' steps compile in 1-5 s each, under JAX's 1 s default floor.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return where


def _jit(fn, config: dict):
    """jax.jit, at the config's XLA backend optimisation level where it sets one (config.py)."""
    import jax

    level = config.get("xla_opt_level")
    return jax.jit(fn) if level is None else jax.jit(fn, compiler_options={"xla_backend_optimization_level": level})


# The config keys that shape the batch views (augmentation, patches, labels); crop_area_min is an
# argument of the views program, so runs that differ only in it (Table 4's CIFAR-10 columns) share it.
VIEW_KEYS = ("objective", "augment", "image_size", "patch_grid", "n_classes", "in_channels", "streamed",
             "xla_opt_level")


# Keys of a setting that the optimiser's state never depends on.
NOT_OPTIMISER_KEYS = ("method", "temperature", "crop_area_min")


@functools.lru_cache(maxsize=32)
def _compiled(setting: tuple):
    """(init, views, step, predict) jitted functions of one setting; cached so reruns do not recompile.

    The batch views and the update are two programs: views depend on the data and augmentation only,
    so every method of a table column reuses one compiled views program (the BYOL augmentation is half
    the compile time of a smoke run's step)."""
    import jax

    enable_compilation_cache()

    from .models import init_params
    from .rules import init_feedback, make_grad_fn

    config = dict(setting)
    n_classes, in_channels, spe = config["n_classes"], config["in_channels"], config["steps_per_epoch"]
    arch = _arch(config, n_classes, in_channels)
    grad_fn = make_grad_fn(config["method"], arch, config["objective"], config.get("temperature"))

    opt_init = _compiled_opt_init(tuple(kv for kv in setting if kv[0] not in NOT_OPTIMISER_KEYS))

    def init(seed):
        params = init_params(arch, [seed, 0])
        feedback = init_feedback(config["method"], arch, [seed, 1])
        return params, feedback, opt_init(params)

    def make_tx(params):
        return make_optimizer(config, params, spe)

    def step(params, opt_state, feedback, batch, k_noise):
        """One update on a batch of views (``_compiled_views``)."""
        grads, aux = grad_fn(params, feedback, batch, k_noise)
        updates, opt_state = make_tx(params).update(grads, opt_state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
        return params, opt_state, aux["loss"]

    # Everything runs compiled: on a loaded CPU each eagerly dispatched op costs a compilation.
    arch_keys = ("num_blocks", "patch_grid", "channels", "groups", "image_size", "norm", "norm_grad",
                 "ln_place", "objective", "proj_dim", "n_classes", "in_channels", "xla_opt_level")
    return (init, _compiled_views(tuple((k, config.get(k)) for k in VIEW_KEYS)), _jit(step, config),
            _compiled_predict(tuple((k, config.get(k)) for k in arch_keys)))


@functools.lru_cache(maxsize=32)
def _compiled_opt_init(setting: tuple):
    """Jitted optimiser init; the method plays no part in it, so a column's methods share it."""
    import jax

    config = dict(setting)
    return jax.jit(lambda p: make_optimizer(config, p, config["steps_per_epoch"]).init(p))


@functools.lru_cache(maxsize=32)
def _compiled_views(setting: tuple):
    """Jitted batch preparation: views(x_all, y_all, idx, step_idx, seed, area_min, x2_all) returns
    ({"x", "y", "x2"}, k_noise) for the update x_all[idx] (the augmented views as patches, one-hot
    labels) and the key of the step's perturbations."""
    import jax
    import jax.numpy as jnp

    from . import augment
    from .models import patchify

    config = dict(setting)
    n_classes, in_channels, size = config["n_classes"], config["in_channels"], config["image_size"]
    contrastive = config["objective"] == "contrastive"
    mean, std = (jnp.array(v, jnp.float32) for v in MEAN_STD[in_channels if in_channels in MEAN_STD else 3])

    def to_float(xb):  # uint8 [N, H, W, C] -> float [0, 1] at the config's image size
        x = xb.astype(jnp.float32) / 255.0
        if x.shape[1] != size or x.shape[2] != size:
            x = jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), "bilinear")
        return x

    def to_patches(x):
        return patchify((x - mean) / std, config["patch_grid"])

    def colour_batch(key, images, view):
        """augment.augment_batch without crop and flip (done when the batch was decoded), same keys."""
        def one(k, img):
            _, _, kj, kpj, kg, ks = jax.random.split(k, 6)
            img = jnp.where(jax.random.uniform(kpj) < augment.P_JITTER, augment.color_jitter(kj, img), img)
            if img.shape[-1] == 3:
                gray = jnp.sum(img * augment._LUMA, axis=-1, keepdims=True)
                img = jnp.where(jax.random.uniform(kg) < augment.P_GRAY, jnp.broadcast_to(gray, img.shape), img)
            solarize_p = augment.P_SOLARIZE_VIEW2 if view == 2 else 0.0
            return jnp.where(jax.random.uniform(ks) < solarize_p, jnp.where(img < 0.5, img, 1.0 - img), img)
        return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)

    def views(x_all, y_all, idx, step_idx, seed, area_min, x2_all=None):
        """Streamed runs pass the decoded batch (and for contrastive runs its second view x2_all),
        already cropped and flipped, with idx = arange(batch)."""
        xb, yb = x_all[idx], y_all[idx]
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 2), step_idx)
        k_noise, k_v1, k_v2 = jax.random.split(key, 3)
        x = to_float(xb)
        if config["augment"] == "byol" and config["streamed"]:
            v1 = colour_batch(k_v1, x, view=1)
            v2 = colour_batch(k_v2, to_float(x2_all[idx]), view=2) if contrastive else None
        elif config["augment"] == "byol":
            v1 = augment.augment_batch(k_v1, x, area_min, view=1)
            v2 = augment.augment_batch(k_v2, x, area_min, view=2) if contrastive else None
        else:
            v1, v2 = x, (x if contrastive else None)
        batch = {"x": to_patches(v1), "y": jax.nn.one_hot(yb, n_classes),
                 "x2": None if v2 is None else to_patches(v2)}
        return batch, k_noise

    return _jit(views, config)


@functools.lru_cache(maxsize=32)
def _compiled_predict(setting: tuple):
    """Jitted test-time prediction (shared by every method on the same architecture)."""
    import jax
    import jax.numpy as jnp

    from .models import backbone, classifier_logits, patchify

    config = dict(setting)
    arch = _arch(config, config["n_classes"], config["in_channels"])
    in_ch = config["in_channels"]
    mean, std = (jnp.array(v, jnp.float32) for v in MEAN_STD[in_ch if in_ch in MEAN_STD else 3])

    def predict(params, x_all, idx):
        x = x_all[idx].astype(jnp.float32) / 255.0
        if x.shape[1] != arch.image_size or x.shape[2] != arch.image_size:
            x = jax.image.resize(x, (x.shape[0], arch.image_size, arch.image_size, x.shape[3]), "bilinear")
        outs, _ = backbone(arch, params, patchify((x - mean) / std, arch.patch_grid), stop_between_blocks=True)
        return jnp.argmax(classifier_logits(params, outs[-1], arch.norm_grad), axis=-1)

    return _jit(predict, config)


# ---------------------------------------------------------------------------------------------
# checkpoints


def _save(path: str, state: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # a kill mid-save leaves the previous checkpoint intact


def _load(path: str) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f)


# ---------------------------------------------------------------------------------------------


def _eval_chunks(n: int):
    """(indices, k) of fixed-size eval batches over n items: the last one padded by wrapping, k real."""
    bs = min(EVAL_BATCH, n)
    for i in range(0, n, bs):
        yield np.arange(i, i + bs) % n, min(bs, n - i)


def error_rate(predict, params, batches) -> float:
    """Error in percent over ``batches`` of (x_all, idx, y): predictions of x_all[idx], the first
    len(y) of which are scored (the rest is padding)."""
    wrong = total = 0
    for x_all, idx, y in batches:
        pred = np.asarray(predict(params, x_all, np.asarray(idx, np.int32)))
        wrong += int(np.sum(pred[:len(y)] != y))
        total += len(y)
    return 100.0 * wrong / total


# ---------------------------------------------------------------------------------------------
# batch sources: where the batches come from (arrays on the device, or decoded image files)


class _InMemory:
    """The whole dataset as uint8 [N, H, W, C] on the device (benchmarks.data.load)."""

    streamed = False

    def __init__(self, config: dict, data_root: str | None):
        import jax.numpy as jnp

        sized = {"image_size": int(config["image_size"])} if config["dataset"] == "imagenet" else {}
        split = data.load(config["dataset"], config["data_source"], data_root,
                          n_train=config.get("n_train"), n_test=config.get("n_test"), **sized)
        self.x_train = jnp.asarray(np.ascontiguousarray(split.x_train.transpose(0, 2, 3, 1)))
        self.x_test = jnp.asarray(np.ascontiguousarray(split.x_test.transpose(0, 2, 3, 1)))
        self.y_train_np, self.y_test_np = split.y_train.astype(np.int32), split.y_test.astype(np.int32)
        self.y_train = jnp.asarray(self.y_train_np)
        self.n, self.n_classes, self.in_channels = len(self.y_train_np), split.n_classes, self.x_train.shape[-1]
        self.kind, self.description = split.kind, split.description

    def train_batches(self, order, bs, spe, seed, epoch):
        """Step arguments (x_all, y_all, idx, x2_all) of each batch of the epoch."""
        for i in range(spe):
            yield self.x_train, self.y_train, order[i * bs:(i + 1) * bs].astype(np.int32), None

    def eval_batches(self, which: str):
        import jax.numpy as jnp

        x, y = (self.x_test, self.y_test_np) if which == "test" else (self.x_train, self.y_train_np)
        # Each chunk is gathered here, so that predict sees [chunk, H, W, C] whichever set it scores:
        # one compiled program for test and train error instead of one per set size.
        return ((x[jnp.asarray(idx)], np.arange(len(idx), dtype=np.int32), y[idx[:k]])
                for idx, k in _eval_chunks(len(y)))

    def close(self):
        pass


class _Streamed:
    """Full-scale ImageNet decoded batch by batch from its files in a thread pool (module docstring)."""

    streamed = True

    def __init__(self, config: dict, data_root: str | None):
        from benchmarks.data._load import pick

        name, source = config["dataset"], config["data_source"]
        self.paths, labels = data.folder_index(name, data_root, "train", data_source=source)
        val_paths, val_labels = data.folder_index(name, data_root, "val", data_source=source)
        self.labels = labels.astype(np.int32)
        keep = pick(val_labels, config.get("n_test"), [0, 2], random_ties=True)  # load's subset, data seed 0
        self.test_paths, self.test_labels = [val_paths[i] for i in keep], val_labels[keep].astype(np.int32)
        self.err_idx = pick(labels, TRAIN_ERR_SUBSET, [0, 3], random_ties=True)
        self.n, self.n_classes, self.in_channels = len(self.labels), data.DATASETS[name]["n_classes"], 3
        self.size = int(config["image_size"])
        self.crop = config.get("crop_area_min") if config["augment"] == "byol" else None
        self.views = 2 if config["objective"] == "contrastive" and self.crop is not None else 1
        subset = len(keep) < len(val_labels)
        self.kind = "subset" if subset else "real"
        aug = (f"random-resized crop (area >= {self.crop}) and flip" if self.crop is not None
               else "decoded like eval images")
        self.description = (
            f"{data.DATASETS[name]['title']}, streamed from class folders under "
            f"{os.path.join(data_root, 'imagenet')} (test = val{', a stratified subset' if subset else ''}): "
            f"{self.n} train / {len(keep)} test real images, decoded per batch at {self.size}x{self.size} "
            f"(train: {aug}; eval: resize to S/{EVAL_CROP}, centre crop); train error on "
            f"{len(self.err_idx)} train images (stratified, fixed)")
        workers = max(1, os.cpu_count() or 1)
        self.depth = workers + 2  # batches decoded ahead of the accelerator
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="ren2023-decode")

    def _prefetch(self, jobs):
        """Results of the zero-argument ``jobs``, in order, with up to ``depth`` running ahead."""
        pending = collections.deque()
        try:
            for job in jobs:
                pending.append(self.pool.submit(job))
                if len(pending) >= self.depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()

    def _nhwc(self, x):
        import jax

        return jax.device_put(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))

    def _decode_train(self, idx, seed, epoch, i):
        import jax

        paths = [self.paths[j] for j in idx]
        if self.crop is None:
            views = [data.decode_batch(paths, self.size, crop_fraction=EVAL_CROP)]
        else:
            views = [data.decode_batch(paths, self.size, np.random.default_rng([seed, epoch, i, v]), train=True,
                                       min_area=float(self.crop)) for v in range(1, self.views + 1)]
        arange = np.arange(len(idx), dtype=np.int32)
        return (self._nhwc(views[0]), jax.device_put(self.labels[idx]), arange,
                self._nhwc(views[1]) if self.views == 2 else None)

    def train_batches(self, order, bs, spe, seed, epoch):
        jobs = (functools.partial(self._decode_train, order[i * bs:(i + 1) * bs], seed, epoch, i) for i in range(spe))
        return self._prefetch(jobs)

    def _decode_eval(self, paths, labels, idx, k):
        x = self._nhwc(data.decode_batch([paths[j] for j in idx], self.size, crop_fraction=EVAL_CROP))
        return x, np.arange(len(idx), dtype=np.int32), labels[idx[:k]]

    def eval_batches(self, which: str):
        if which == "test":
            paths, labels = self.test_paths, self.test_labels
        else:
            paths, labels = [self.paths[j] for j in self.err_idx], self.labels[self.err_idx]
        return self._prefetch(functools.partial(self._decode_eval, paths, labels, idx, k)
                              for idx, k in _eval_chunks(len(labels)))

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


def train(config: dict, *, data_root: str | None = None, progress=None, checkpoint: str | None = None) -> dict:
    """Train one run; with ``checkpoint`` (a file path) save after every epoch and resume from it."""
    _check(config)
    source = (_Streamed if _streams(config) else _InMemory)(config, data_root)
    try:
        return _train(config, source, progress, checkpoint)
    finally:
        source.close()


def _train(config: dict, source, progress, checkpoint) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    n = source.n
    bs = min(int(config["batch_size"]), n)
    spe = n // bs
    seed, epochs = int(config["seed"]), int(config["epochs"])

    init, views, step, predict = _compiled(_setting(config, source.n_classes, source.in_channels, spe,
                                                    source.streamed))
    area_min = np.float32(config.get("crop_area_min") or 0.08)
    params, feedback, opt_state = init(seed)
    curves = {"epoch": [], "train_loss": [], "test_err": []}
    first, resumed = 1, 0
    if checkpoint and os.path.exists(checkpoint):
        ck = _load(checkpoint)
        params = jax.tree.map(jnp.asarray, ck["params"])
        opt_state = jax.tree.map(jnp.asarray, ck["opt_state"])
        first, resumed, curves = ck["epoch"] + 1, ck["resumed"] + 1, ck["curves"]

    diverged = False
    for epoch in range(first, epochs + 1):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        step_losses = []
        for i, (x_all, y_all, idx, x2_all) in enumerate(source.train_batches(order, bs, spe, seed, epoch)):
            batch, k_noise = views(x_all, y_all, idx, (epoch - 1) * spe + i, seed, area_min, x2_all)
            params, opt_state, loss = step(params, opt_state, feedback, batch, k_noise)
            step_losses.append(loss)
        train_loss = float(np.mean(jax.device_get(step_losses))) if step_losses else math.nan
        if not math.isfinite(train_loss):
            diverged = True
            curves["epoch"].append(epoch)
            curves["train_loss"].append(train_loss)
            curves["test_err"].append(math.nan)
            break
        test_err = error_rate(predict, params, source.eval_batches("test"))
        for k, v in (("epoch", epoch), ("train_loss", train_loss), ("test_err", test_err)):
            curves[k].append(v)
        if checkpoint:
            _save(checkpoint, {"epoch": epoch, "resumed": resumed, "curves": curves,
                               "params": jax.device_get(params), "opt_state": jax.device_get(opt_state)})
        if progress is not None:
            progress(epoch=epoch, epochs=epochs, loss=train_loss, test_err=test_err)

    if diverged or not curves["epoch"]:
        metrics = {"test_err": math.nan, "train_err": math.nan, "diverged": diverged}
    else:
        metrics = {"test_err": curves["test_err"][-1],
                   "train_err": error_rate(predict, params, source.eval_batches("train")), "diverged": False}
    from .models import count_params

    metrics.update(curves=curves, resumed=resumed, epochs_run=len(curves["epoch"]),
                   n_params=count_params({"blocks": params["blocks"], "heads": params["heads"],
                                          "classifier": params["classifier"]}))
    import flax

    return {"metrics": metrics,
            "data": {"dataset": config["dataset"], "source": config["data_source"], "kind": source.kind,
                     "description": source.description},
            "device": describe_device(),
            "versions": {"jax": jax.__version__, "optax": optax.__version__, "flax": flax.__version__,
                         "numpy": np.__version__}}
