"""Bacho & Chu's networks as a stack of hidden blocks plus a linear output layer.

Every learning rule needs the same view of a network: the hidden "layers" l = 1..L-1 whose outputs
y_l are perturbed (FG-A, FDFA) or receive direct feedback (DFA, DKP, FDFA), and the output layer.
So a network here is ``blocks`` (each maps y_{l-1} to y_l and ends with ReLU, or ReLU + pooling)
and ``out`` (Linear, linear activation). Forward weights use PyTorch's default initialisation,
which is uniform Kaiming (``kaiming_uniform_``, as in the authors' code; paper Appendix A).

Choices the paper leaves open (each with its source):
- FC nets have no batch norm: Table B.5's parameter counts (636 K for 784-800-10) only add up
  without BN parameters; the paper adds BN "after each convolutional layer of AlexNet" only
  (Appendix A). The authors' code puts BN in FC layers too; ``batchnorm=True`` reproduces that.
- Shallow CNN: 15C5-P2-40C5-P2-128-10 as printed in Table 2 (two pools, no padding); the
  authors' code has one pool only (``cnn_pools=1``, the ``code`` variant). With ``batchnorm`` the
  fully connected hidden layer gets BN too, as fc1 has in the code.
- AlexNet: torchvision's AlexNet layout, BN after each conv, no dropout, no BN in FC layers (the
  paper names convs only); its hidden blocks end after pool1, pool2, conv3, conv4, pool5 +
  average pool + flatten, fc1 and fc2, where the authors' code attaches its feedback hooks.
"""

from __future__ import annotations

import torch
from torch import nn

DATASET_SHAPES = {  # (channels, height, width), classes
    "mnist": ((1, 28, 28), 10), "fashion_mnist": ((1, 28, 28), 10), "digits": ((1, 8, 8), 10),
    "cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100), "tiny_imagenet": ((3, 64, 64), 200),
}


class _LinearFn(torch.autograd.Function):
    """y = x W^T + b with its own forward-mode (JVP) and reverse-mode rules.

    Why: PyTorch's built-in forward-mode rule for linear materialises zero tangents for inputs
    that carry none (an 800x800 zero fill plus a wasted matmul per layer when only activations are
    perturbed, as in FG-A and FDFA). This rule skips absent tangents; it is still forward-mode AD
    on dual tensors, with the primitive's JVP written out. Tests check it against F.linear.
    """

    @staticmethod
    def forward(x, weight, bias):
        return torch.addmm(bias, x, weight.t()) if bias is not None else x @ weight.t()

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)
        ctx.has_bias = bias is not None
        ctx.set_materialize_grads(False)  # absent tangents / grads arrive as None, not zeros

    @staticmethod
    def backward(ctx, g):
        if g is None:
            return None, None, None
        x, weight = ctx.saved_tensors
        gx = g @ weight if ctx.needs_input_grad[0] else None
        gw = g.t() @ x if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb

    @staticmethod
    def jvp(ctx, x_t, w_t, b_t):
        x, weight = ctx.saved_tensors
        out = None
        if x_t is not None:
            out = x_t @ weight.t()
        if w_t is not None:
            out = x @ w_t.t() if out is None else out.addmm_(x, w_t.t())
        if b_t is not None:
            out = b_t.expand(x.shape[0], -1).clone() if out is None else out.add_(b_t)
        return out


class Linear(nn.Linear):
    """nn.Linear (same parameters and init) whose forward uses ``_LinearFn`` on 2-D inputs."""

    def forward(self, x):
        if x.dim() != 2:
            return super().forward(x)
        return _LinearFn.apply(x, self.weight, self.bias)


class LayeredNet(nn.Module):
    def __init__(self, blocks: list[nn.Module], out: nn.Module, heads: list[nn.Module] | None = None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.out = out
        # Local linear classifiers after hidden layers l < L-1 (LG-FG-A only; paper Appendix A).
        self.heads = nn.ModuleList(heads or [])

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.out(x)

    def forward_params(self):
        """Parameters of the network proper (not the local heads)."""
        return [p for m in (self.blocks, self.out) for p in m.parameters()]


def _mlp_block(n_in: int, n_out: int, batchnorm: bool, flatten: bool = False) -> nn.Sequential:
    layers = [nn.Flatten()] if flatten else []
    layers.append(Linear(n_in, n_out))
    if batchnorm:
        layers.append(nn.BatchNorm1d(n_out))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _conv_block(c_in, c_out, k, stride=1, padding=0, batchnorm=False, pool: nn.Module | None = None):
    layers = [nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU())
    if pool is not None:
        layers.append(pool)
    return nn.Sequential(*layers)


def build(config: dict) -> LayeredNet:
    """The network a run config names (arch, depth, hidden, width_mult, image_size, dataset)."""
    (c, h, w), n_classes = DATASET_SHAPES[config["dataset"]]
    size = config.get("image_size") or h
    h = w = size
    arch, bn = config["arch"], bool(config.get("batchnorm", False))
    if arch == "fc":
        width, depth = int(config["hidden"]), int(config["depth"])
        dims = [c * h * w] + [width] * (depth - 1)
        blocks = [_mlp_block(dims[i], dims[i + 1], bn, flatten=(i == 0)) for i in range(depth - 1)]
        out = Linear(dims[-1], n_classes)
        feats = dims[1:]
        if depth == 1:
            out = nn.Sequential(nn.Flatten(), out)
    elif arch == "cnn":
        m = float(config.get("width_mult", 1.0))
        c1, c2, fc = max(1, round(15 * m)), max(1, round(40 * m)), max(1, round(128 * m))
        if int(config.get("cnn_pools", 2)) == 2:  # 15C5-P2-40C5-P2-128-10 as Table 2 prints it
            s1 = (h - 4) // 2
            s2 = (s1 - 4) // 2
            blocks = [_conv_block(c, c1, 5, batchnorm=bn, pool=nn.MaxPool2d(2)),
                      _conv_block(c1, c2, 5, batchnorm=bn, pool=nn.MaxPool2d(2)),
                      _mlp_block(c2 * s2 * s2, fc, batchnorm=bn, flatten=True)]
            feats = [c1 * s1 * s1, c2 * s2 * s2, fc]
        else:
            # The authors' conv_mnist.py / conv_cifar10.py: conv-conv, ONE 2x2 pool after the second
            # conv's feedback hook, so y_2 is the unpooled 40-channel map and fc1 reads 40*10*10
            # (MNIST) inputs; BN after both convs and fc1 where batchnorm is on.
            s1 = h - 4
            s2 = s1 - 4
            blocks = [_conv_block(c, c1, 5, batchnorm=bn),
                      _conv_block(c1, c2, 5, batchnorm=bn),
                      nn.Sequential(nn.MaxPool2d(2), *_mlp_block(c2 * (s2 // 2) ** 2, fc, batchnorm=bn, flatten=True))]
            feats = [c1 * s1 * s1, c2 * s2 * s2, fc]
        out = Linear(fc, n_classes)
    elif arch == "alexnet":
        m = float(config.get("width_mult", 1.0))
        ch = [max(1, round(v * m)) for v in (64, 192, 384, 256, 256)]
        fc = max(1, round(4096 * m))
        bn = config.get("batchnorm", True)
        blocks = [
            _conv_block(c, ch[0], 11, stride=4, padding=2, batchnorm=bn, pool=nn.MaxPool2d(3, 2)),
            _conv_block(ch[0], ch[1], 5, padding=2, batchnorm=bn, pool=nn.MaxPool2d(3, 2)),
            _conv_block(ch[1], ch[2], 3, padding=1, batchnorm=bn),
            _conv_block(ch[2], ch[3], 3, padding=1, batchnorm=bn),
            nn.Sequential(*_conv_block(ch[3], ch[4], 3, padding=1, batchnorm=bn, pool=nn.MaxPool2d(3, 2)),
                          nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten()),
            _mlp_block(ch[4] * 36, fc, batchnorm=False),
            _mlp_block(fc, fc, batchnorm=False),
        ]
        out = Linear(fc, n_classes)
        feats = None
    else:
        raise ValueError(f"unknown arch {arch!r}")
    if feats is None:  # infer hidden sizes with a dry forward pass
        with torch.no_grad():
            z, feats = torch.zeros(2, c, h, w), []
            for blk in blocks:
                z = blk(z)
                feats.append(z[0].numel())
    heads = []
    if config["method"] == "LG-FG-A":
        heads = [nn.Sequential(nn.Flatten(), Linear(f, n_classes)) for f in feats[:-1]]
    net = LayeredNet(blocks, out, heads)
    if config["method"] == "DFA" and config.get("dfa_zero_init", True):
        _zero_forward_weights(net)
    return net


def _zero_forward_weights(net: LayeredNet) -> None:
    """DFA's forward weights start at 0 (paper Appendix A); biases keep their default init.

    With batch norm right after a zero-weight conv every unit outputs exactly 0, its ReLU
    derivative is 0 and nothing could ever learn (yet the paper reports DFA training AlexNet), so
    layers followed by batch norm keep their default init, as in the authors' code.
    """
    for seq in list(net.blocks) + [net.out]:
        mods = list(seq.modules())
        for i, m in enumerate(mods):
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                followed_by_bn = i + 1 < len(mods) and isinstance(mods[i + 1], (nn.BatchNorm1d, nn.BatchNorm2d))
                if not followed_by_bn:
                    nn.init.zeros_(m.weight)


def count_params(net: LayeredNet) -> int:
    return sum(p.numel() for p in net.forward_params())


def hidden_sizes(net: LayeredNet, example: torch.Tensor) -> list[int]:
    """Neurons per hidden layer (elements of y_l per example)."""
    sizes = []
    with torch.no_grad():
        z = example
        for blk in net.blocks:
            z = blk(z)
            sizes.append(z[0].numel())
    return sizes


def feedback_matrices(n_out: int, sizes: list[int], init: str) -> list[torch.Tensor]:
    """Direct feedback B_l (n_out x n_l): fixed Kaiming-uniform for DFA, zeros for DKP and FDFA."""
    mats = []
    for n in sizes:
        b = torch.empty(n_out, n)
        if init == "kaiming_uniform":
            nn.init.kaiming_uniform_(b)  # fan_in = n_l, gain sqrt(2), as torch's default for this call
        else:
            b.zero_()
        mats.append(b)
    return mats
