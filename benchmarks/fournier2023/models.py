"""ResNet-18 split into local-loss blocks, and the auxiliary nets of Fournier et al. (ICML 2023).

Architecture (paper Section 4.1, App. A.1-A.2, B.1; IMPLEMENTATION_NOTES section 2):
- 8 blocks: ResNet-18 with skips, one block per BasicBlock; block 0 = stem + first BasicBlock;
  widths 64,64,128,128,256,256,512,512; stride 2 with a 1x1-conv/BN shortcut at blocks 2, 4, 6.
- 16 blocks: the same convolutions without any skip; block 0 = stem + one conv3x3-BN-ReLU, blocks
  1-15 one conv3x3-BN-ReLU each; stride 2 at blocks 4, 8, 12.
- stem "small" (A.1): 3x3 stride-1 conv without bias, affine BN, ReLU, no max-pool.
  stem "imagenet" (B.1, Imagenette): the standard 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool.
- head (after the last block, trained with the exact global gradient): BN2d -> global average
  pool -> Linear (notes).
- ``width_factor`` k scales every channel count (Wide ResNet, Tables 8/10) and the auxiliaries'
  hidden width: the config's ``aux_hidden`` is the base width (A.2: 1024 MLP / 32 CNN; 512 / 16
  for 16 blocks in the authors' code) and the CNN / MLP auxiliary is built with round(k * aux_hidden),
  as the authors' ``widen_factor`` does (Section 4.5: "for both the model and the auxiliary network").
Init (notes): kaiming_uniform_ on conv/linear weights, their biases 0.01; BN keeps PyTorch's
weight 1 / bias 0 (the notes name only "biases"; BN is not re-initialised here).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_WIDTHS = (64, 64, 128, 128, 256, 256, 512, 512)  # one per BasicBlock of ResNet-18
AUX_KINDS = ("cnn", "mlp", "linear", "predsim")


def scaled(width: int, factor: float) -> int:
    return max(1, int(round(width * float(factor))))


def init_weights(module: nn.Module) -> nn.Module:
    """kaiming_uniform_ weights, biases 0.01 (authors' code); BN reset to weight 1 / bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.01)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()
    return module


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


def stem(kind: str, c_in: int, width: int) -> nn.Sequential:
    if kind == "small":
        return conv_bn_relu(c_in, width)
    if kind == "imagenet":
        return nn.Sequential(nn.Conv2d(c_in, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                             nn.MaxPool2d(3, 2, 1))
    raise ValueError(f"unknown stem {kind!r}")


class BasicBlock(nn.Module):
    """ResNet BasicBlock: two conv3x3-BN, identity or 1x1-conv/BN shortcut, ReLU after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Head(nn.Module):
    """The classifier after the last block: BN2d -> global average pool -> Linear."""

    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, h):
        return self.fc(F.adaptive_avg_pool2d(self.bn(h), 1).flatten(1))


def build_blocks(n_blocks: int, stem_kind: str, in_channels: int, width_factor: float) -> tuple[nn.ModuleList, list[int]]:
    """The main network's blocks and their output channel counts."""
    w = [scaled(c, width_factor) for c in BASE_WIDTHS]
    if n_blocks == 8:
        blocks = [nn.Sequential(stem(stem_kind, in_channels, w[0]), BasicBlock(w[0], w[0], 1))]
        for j in range(1, 8):
            blocks.append(BasicBlock(w[j - 1], w[j], 2 if j in (2, 4, 6) else 1))
        return nn.ModuleList(blocks), w
    if n_blocks == 16:
        widths = [w[2 * (j // 4)] for j in range(16)]  # 4 layers at each of 64, 128, 256, 512 (x k)
        blocks = [nn.Sequential(stem(stem_kind, in_channels, widths[0]), conv_bn_relu(widths[0], widths[0]))]
        for j in range(1, 16):
            blocks.append(conv_bn_relu(widths[j - 1], widths[j], 2 if j in (4, 8, 12) else 1))
        return nn.ModuleList(blocks), widths
    raise ValueError(f"n_blocks must be 8 or 16, not {n_blocks}")


# ---------------------------------------------------------------------------------------------
# Auxiliary nets: each maps a block's output [B, C, H, W] to a local loss (Section 4.1, App. A.2).


class CNNAux(nn.Module):
    """1x1 conv C->h + BN + ReLU, then depth x (3x3 stride-2 conv + BN + ReLU), 2x2 adaptive
    average pool, linear to the classes."""

    def __init__(self, channels, n_classes, hidden, depth):
        super().__init__()
        layers = [nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Conv2d(hidden, hidden, 3, 2, 1), nn.BatchNorm2d(hidden), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(4 * hidden, n_classes)

    def forward(self, h):
        return self.fc(F.adaptive_avg_pool2d(self.features(h), 2).flatten(1))

    def loss(self, h, y):
        return F.cross_entropy(self(h), y)


class MLPAux(nn.Module):
    """2x2 adaptive average pool, depth x (Linear without bias + BN1d + ReLU) of width h, linear."""

    def __init__(self, channels, n_classes, hidden, depth):
        super().__init__()
        layers, d = [], 4 * channels
        for _ in range(depth):
            layers += [nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU()]
            d = hidden
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(d, n_classes)

    def forward(self, h):
        return self.fc(self.features(F.adaptive_avg_pool2d(h, 2).flatten(1)))

    def loss(self, h, y):
        return F.cross_entropy(self(h), y)


class LinearAux(nn.Module):
    """BN2d, 2x2 adaptive average pool, linear (as in Belilovsky et al. 2021)."""

    def __init__(self, channels, n_classes, hidden=None, depth=None):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(4 * channels, n_classes)

    def forward(self, h):
        return self.fc(F.adaptive_avg_pool2d(self.bn(h), 2).flatten(1))

    def loss(self, h, y):
        return F.cross_entropy(self(h), y)


def similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """Cosine similarities between the rows of x (features centred and scaled per example), as in
    Nokland & Eidnes (2019)'s predsim loss."""
    x = x.flatten(1)
    x = x - x.mean(dim=1, keepdim=True)
    x = x / (x.std(dim=1, keepdim=True) + 1e-8)
    x = F.normalize(x, dim=1)
    return (x @ x.t()).clamp(-1, 1)


class PredSimAux(nn.Module):
    """Nokland & Eidnes (2019) 'predsim' (App. B.2): loss = 0.01 * CE(pred) + 0.99 * MSE(sim).

    pred: 2x2 adaptive average pool -> linear classifier (the paper: "the predictive auxiliary of
    predsim being linear"); sim: a 3x3 conv (C->C, no bias) on the block output whose example-by-
    example similarity matrix is matched (MSE) to the similarity matrix of the one-hot labels.
    The 2x2 pooling of the pred branch follows the other auxiliaries here; Nokland & Eidnes pool
    until the flattened size fits their decoder width (a detail the paper does not restate).
    """

    beta = 0.99

    def __init__(self, channels, n_classes, hidden=None, depth=None):
        super().__init__()
        self.n_classes = n_classes
        self.sim_conv = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.fc = nn.Linear(4 * channels, n_classes)

    def forward(self, h):
        return self.fc(F.adaptive_avg_pool2d(h, 2).flatten(1))

    def loss(self, h, y):
        pred = F.cross_entropy(self(h), y)
        target_sim = similarity_matrix(F.one_hot(y, self.n_classes).float())
        sim = F.mse_loss(similarity_matrix(self.sim_conv(h)), target_sim)
        return (1 - self.beta) * pred + self.beta * sim


AUX_CLASSES = {"cnn": CNNAux, "mlp": MLPAux, "linear": LinearAux, "predsim": PredSimAux}


def build_aux(kind: str, channels: int, n_classes: int, hidden: int | None, depth: int | None) -> nn.Module:
    if kind not in AUX_CLASSES:
        raise ValueError(f"unknown auxiliary net {kind!r}; known: {', '.join(AUX_CLASSES)}")
    return init_weights(AUX_CLASSES[kind](channels, n_classes, hidden, depth))


class SplitResNet(nn.Module):
    """ResNet-18 as ``blocks`` (each trained on its own, detached input where the algorithm says
    so) and ``head``; ``aux[j]`` is block j's trained auxiliary net and ``guess_aux[j]`` the
    untrained one of the NTK guesses (j = 0 .. n_blocks - 2: the last block uses the global loss).
    Everything trainable or frozen lives in this one module, so one state_dict checkpoints it."""

    def __init__(self, config: dict, in_channels: int, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        self.blocks, self.widths = build_blocks(int(config["n_blocks"]), config["stem"], in_channels,
                                                float(config["width_factor"]))
        self.head = Head(self.widths[-1], n_classes)
        init_weights(self)

        hidden = config.get("aux_hidden")
        hidden = scaled(hidden, config["width_factor"]) if hidden else None

        def auxes(kind):
            return nn.ModuleList(build_aux(kind, c, n_classes, hidden, config.get("aux_depth"))
                                 for c in self.widths[:-1])

        self.aux = auxes(config["aux"]) if uses_trained_aux(config) else None
        self.guess_aux = auxes(config["aux"]) if config.get("guess") in ("ntk", "fixed_ntk") else None
        if self.guess_aux is not None:
            self.guess_aux.requires_grad_(False)  # NTK guesses come from untrained auxiliaries

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.head(x)

    def main_parameters(self) -> list[nn.Parameter]:
        return list(self.blocks.parameters()) + list(self.head.parameters())

    def trained_parameters(self) -> list[nn.Parameter]:
        """What the optimiser updates: the network, and the trained auxiliaries if any."""
        return self.main_parameters() + (list(self.aux.parameters()) if self.aux is not None else [])


def uses_trained_aux(config: dict) -> bool:
    """Trained auxiliaries exist when an algorithm needs their loss (local learning, a local or
    intermediate target, a local guess), or for logging local losses in e2e if an aux is named."""
    if config.get("aux") is None:
        return False
    if config["algorithm"] in ("local", "e2e"):
        return True
    return config.get("target") in ("local", "intermediate") or config.get("guess") == "local"


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
