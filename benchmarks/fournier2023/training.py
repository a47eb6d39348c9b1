"""Train one Fournier et al. (ICML 2023) run: ``train(config) -> {"metrics", "data", "device", "versions"}``.

One training step per algorithm (Section 3; IMPLEMENTATION_NOTES section 2):
- ``e2e``: backprop through the whole net. If the config names an ``aux``, the auxiliaries are
  trained on detached block outputs for logging only (Fig. 2); with ``aux`` null there are none.
- ``local``: every block on its detached input, trained by its own auxiliary loss (DGL); the last
  block and the head by the global loss.
- ``fg``: for every block j but the last, a Gradient Target t_j at the block's output (global: the
  end-to-end gradient; local: the gradient of block j's auxiliary loss; intermediate: of block
  j+1's auxiliary loss, Table 5, where "block j+1's auxiliary" of the second-to-last block is the
  head and global loss) is projected on a Gradient Guess (local: block j's trained auxiliary's
  gradient; ntk: an auxiliary re-initialised every step; fixed_ntk: one frozen random auxiliary,
  Table 11; gaussian / rademacher: random). ``space`` activity (Eq. 5): guess and target live at
  the block output, the estimate is backpropagated inside the block only. ``space`` weight (Eq. 4):
  per-sample weight gradients, one projection scalar per sample and parameter tensor (the authors
  project a layer's weight and bias separately). The last block and head always get the exact
  global gradient; trained auxiliaries always get their exact local gradient.

Where the authors' code departs from the text, config keys select its form (fidelity variants,
``specs.VARIANTS``; absent = the text): ``random_weight_norm: per_tensor`` divides a weight-space
random guess by its squared norm, per sample and tensor (``trainer/estimators.py``
``compute_projection``); ``bn_weight_grad: bias_overwrite`` reproduces their batch-norm slip, where
the bias's projection is written to ``weight.grad`` (so gamma moves by beta's estimate) and beta
keeps what the guess pass left in its ``.grad`` (the raw guess gradient of an auxiliary guess; none
for a random one, whose guess pass runs no backward); ``projection: batch`` projects the batch
gradient on the batch guess once per tensor (A.3; their ``avg-weight-fast``).

How the projection is computed. Like the authors (App. A.3, "two backward passes") the targets
and guesses come from vector-Jacobian products, and the directional derivative t_i . g_i is a dot
product. It is mathematically the forward-mode directional derivative of the target loss along
the guess (``tests/test_fournier_engine.py`` checks it against ``torch.autograd.forward_ad`` in
both spaces). We keep the backward form because forward mode is much slower here: each block needs
its own per-sample scalar, so the global target would take one JVP through the rest of the
network per block (n_blocks / 2 extra network passes), and weight space one JVP per layer;
one backward pass gives all of them at once.

All blocks run in one forward pass on detached inputs (the authors run a target pass and a guess
pass with identical batch statistics; one pass gives the same gradients and updates batch-norm
running statistics once).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

from benchmarks import data
from benchmarks.torch_common import (describe_device, final_metrics, flush_denormals, pick_device,
                                     retain_freed_memory, save_checkpoint)
from benchmarks.torch_common import evaluate as _evaluate
from benchmarks.suite.errors import DataError

from .config import DATASETS as PAPER_DATASETS
from .estimators import (LayerRecorder, RANDOM_GUESSES, directional, draw_random, estimate, per_sample_shares,
                         project_batch, project_batch_random, projected_on_guess)
from .models import SplitResNet, count_params, init_weights

EVAL_BATCH = 500
# Per-channel (mean, std). CIFAR: the statistics the authors' code uses (notes: "Ren's stats");
# MNIST / Fashion-MNIST: the usual ones; ImageNet32 / Imagenette: ImageNet's.
NORMALISATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "imagenet32": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagenette": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}



class Batches:
    """Device-resident uint8 dataset; yields normalised (and, for training, augmented) batches.

    Augmentation (App. A.3): random crop with 4 pixels of zero padding (in pixel space, like
    torchvision's RandomCrop before ToTensor/Normalize) and a horizontal flip with probability 0.5,
    drawn from its own generator so that a resumed run draws the same crops."""

    def __init__(self, x, y, dataset: str, image_size: int | None, device, stats=None):
        self.x = torch.from_numpy(x).to(device)
        self.y = torch.from_numpy(y).long().to(device)
        if stats is None:
            stats = NORMALISATION.get(dataset)
        if stats is None:  # e.g. scikit-learn's digits: this split's own per-channel statistics
            xf = self.x.float() / 255.0
            stats = (xf.mean((0, 2, 3)).tolist(), xf.std((0, 2, 3)).clamp_min(1e-3).tolist())
        self.stats = stats
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(stats[0], device=device).view(shape)
        self.std = torch.tensor(stats[1], device=device).view(shape)
        self.size = image_size

    def __len__(self):
        return self.x.shape[0]

    def _augment(self, xb, generator):
        b, _, h, w = xb.shape
        shifts = torch.randint(0, 9, (b, 2), generator=generator).to(xb.device)
        flips = (torch.rand(b, generator=generator) < 0.5).to(xb.device)
        padded = F.pad(xb, (4, 4, 4, 4))
        rows = (shifts[:, :1] + torch.arange(h, device=xb.device)).view(b, 1, h, 1)
        cols = (shifts[:, 1:] + torch.arange(w, device=xb.device)).view(b, 1, 1, w)
        cols = torch.where(flips.view(b, 1, 1, 1), cols.flip(-1), cols)
        batch = torch.arange(b, device=xb.device).view(b, 1, 1, 1)
        chans = torch.arange(xb.shape[1], device=xb.device).view(1, -1, 1, 1)
        return padded[batch, chans, rows, cols]

    def prep(self, xb):
        xb = (xb.float() / 255.0 - self.mean) / self.std
        if self.size and xb.shape[-1] != self.size:
            xb = F.interpolate(xb, size=(self.size, self.size), mode="bilinear", align_corners=False,
                               antialias=xb.shape[-1] > self.size)
        return xb

    def batches(self, batch_size, shuffle=None, augment=None):
        """``shuffle`` / ``augment``: CPU generators (None: in order / no augmentation)."""
        n = len(self)
        order = torch.randperm(n, generator=shuffle).to(self.x.device) if shuffle is not None \
            else torch.arange(n, device=self.x.device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            xb = self.x[idx]
            if augment is not None:
                xb = self._augment(xb, augment)
            yield self.prep(xb), self.y[idx]


# ---------------------------------------------------------------------------------------------
# One training step per algorithm: ``step(x, y)`` sets ``.grad`` of every trained parameter and
# returns the global loss (detached).


class Stepper:
    def __init__(self, net: SplitResNet, config: dict):
        self.net = net
        self.algorithm = config["algorithm"]
        self.target, self.guess = config.get("target"), config.get("guess")
        self.space, self.projection = config.get("space"), config.get("projection")
        self.normalised_random = config.get("random_weight_norm") == "per_tensor"
        self.bn_overwrite = config.get("bn_weight_grad") == "bias_overwrite"
        self.recorders = None
        if self.algorithm == "fg" and self.space == "weight" and self.projection != "batch":
            self.recorders = [LayerRecorder(blk) for blk in net.blocks[:-1]]
        self.trace = None  # set to {} to keep, per block, the directional derivatives and guesses
        self.local_losses: list[torch.Tensor] = []  # last step's auxiliary losses, per block

    def step(self, x, y) -> torch.Tensor:
        return {"e2e": self._e2e, "local": self._local, "fg": self._fg}[self.algorithm](x, y)

    def _aux_losses(self, outs, y):
        if self.net.aux is None:
            return []
        losses = [aux.loss(o, y) for aux, o in zip(self.net.aux, outs)]
        self.local_losses = [l.detach() for l in losses]
        return losses

    def _e2e(self, x, y):
        outs, h = [], x
        for blk in self.net.blocks:
            h = blk(h)
            outs.append(h)
        loss = F.cross_entropy(self.net.head(h), y)
        # Auxiliaries (if any) learn on detached outputs: logging only, no effect on the network.
        aux = self._aux_losses([o.detach() for o in outs[:-1]], y)
        (loss + sum(aux)).backward()
        return loss.detach()

    def _local(self, x, y):
        outs, h = [], x
        for blk in self.net.blocks:
            h = blk(h.detach())
            outs.append(h)
        loss = F.cross_entropy(self.net.head(h), y)
        (loss + sum(self._aux_losses(outs[:-1], y))).backward()
        return loss.detach()

    @staticmethod
    def _set_grads(params, grads):
        for p, g in zip(params, grads):
            p.grad = g if p.grad is None else p.grad + g

    def _fg(self, x, y):
        net, blocks = self.net, self.net.blocks
        last = len(blocks) - 1
        chained = self.target in ("global", "intermediate")  # targets that cross a block boundary
        if self.guess == "ntk":
            for aux in net.guess_aux:
                init_weights(aux)  # NTK guess: a fresh random auxiliary every step (Section 3.1)

        zs, outs, h = [], [], x
        for j, blk in enumerate(blocks):
            z = h.detach().requires_grad_(chained and j > 0)
            recording = self.recorders is not None and j < last
            if recording:
                self.recorders[j].start()
            h = blk(z)
            if recording:
                self.recorders[j].stop()
            zs.append(z)
            outs.append(h)
        loss = F.cross_entropy(net.head(h), y)

        # Exact gradients: last block + head (global loss), trained auxiliaries (their own loss);
        # and from the same pass, a_j = d aux_j / d out_j and d loss / d out_{last-1}.
        detached = [o.detach().requires_grad_() for o in outs[:-1]]
        aux_losses = self._aux_losses(detached, y)
        exact = list(blocks[last].parameters()) + list(net.head.parameters())
        if net.aux is not None:
            exact += list(net.aux.parameters())
        extra = ([zs[last]] if chained else []) + (detached if aux_losses else [])
        grads = torch.autograd.grad(loss + sum(aux_losses), exact + extra)
        self._set_grads(exact, grads[:len(exact)])
        extra_grads = list(grads[len(exact):])
        top_target = extra_grads.pop(0) if chained else None  # d loss / d out_{last-1}
        aux_grad = extra_grads  # a_j, j < last (empty without trained auxiliaries)

        if self.trace is not None:
            self.trace.clear()
        global_target = top_target
        for j in range(last - 1, -1, -1):
            if self.target == "global":
                target = global_target
            elif self.target == "local":
                target = aux_grad[j]
            elif j == last - 1:  # intermediate, next block is the last: the global loss
                target = top_target
            else:  # intermediate: block j+1's auxiliary loss, backpropagated through block j+1
                target, = torch.autograd.grad(outs[j + 1], zs[j + 1], aux_grad[j + 1], retain_graph=True)
            guess = self._guess(j, outs[j], aux_grad, y)
            want_chain = self.target == "global" and j > 0
            if self.space == "activity":
                global_target = self._activity_update(j, zs[j], outs[j], target, guess, want_chain)
            elif self.projection == "batch":
                global_target = self._batch_weight_update(j, zs[j], outs[j], target, guess, want_chain)
            else:
                global_target = self._weight_update(j, zs[j], outs[j], target, guess, want_chain)
        return loss.detach()

    def _guess(self, j, out, aux_grad, y):
        if self.guess == "local":
            return aux_grad[j]
        if self.guess in ("ntk", "fixed_ntk"):
            h = out.detach().requires_grad_()
            g, = torch.autograd.grad(self.net.guess_aux[j].loss(h, y), h)
            return g
        if self.space == "activity":
            return draw_random(self.guess, out.shape, out.device, out.dtype)
        return None  # weight space: drawn per parameter tensor

    def _activity_update(self, j, z, out, target, guess, want_chain):
        """Eq. 5: the projected activation gradient is backpropagated inside block j."""
        params = list(self.net.blocks[j].parameters())
        est = estimate(target, guess, self.guess, self.projection)
        self._set_grads(params, torch.autograd.grad(out, params, est, retain_graph=True))
        if self.trace is not None:
            self.trace[j] = {"dot": directional(target, guess), "guess": guess, "target": target}
        if not want_chain:
            return None
        # The end-to-end gradient one block down: the true target, not the estimate, goes through.
        chain, = torch.autograd.grad(out, z, target, retain_graph=True)
        return chain

    def _weight_update(self, j, z, out, target, guess, want_chain):
        """Eq. 4 as the authors compute it: per-sample weight gradients of target and guess, one
        projection scalar per sample and parameter tensor, the estimates summed over the batch."""
        records = self.recorders[j].records
        layer_outs = [o for _, _, o in records]
        got = torch.autograd.grad(out, layer_outs + ([z] if want_chain else []), target, retain_graph=True)
        target_deltas = got[:len(layer_outs)]
        guess_deltas = None
        if guess is not None:
            guess_deltas = torch.autograd.grad(out, layer_outs, guess, retain_graph=True)
        traced = [] if self.trace is not None else None
        if guess_deltas is not None:
            # Auxiliary guesses: sum_i c_i g_i without per-sample copies of the weights (estimators).
            projected = projected_on_guess(records, target_deltas, guess_deltas)
            if self.bn_overwrite:
                projected = _authors_bn_grads(records, projected, guess_deltas)
            for p, grad, _ in projected:
                self._set_grads([p], [grad])
            for k, record in enumerate(records if traced is not None else []):
                # Tracing (tests): the per-sample guesses themselves, checked against forward-mode AD.
                for (p, t), (_, g) in zip(per_sample_shares([record], [target_deltas[k]]),
                                          per_sample_shares([record], [guess_deltas[k]])):
                    traced.append((p, directional(t, g), g))
        else:
            # Random guesses are drawn per sample: per-sample gradients, one layer at a time because
            # those of a wide layer are large (B x |W|).
            for k, record in enumerate(records):
                shares = []
                for p, t in per_sample_shares([record], [target_deltas[k]]):
                    g = draw_random(self.guess, t.shape, t.device, t.dtype)
                    shares.append((p, estimate(t, g, self.guess, self.projection, self.normalised_random).sum(0)))
                    if traced is not None:
                        traced.append((p, directional(t, g), g))
                if self.bn_overwrite and isinstance(record[0], torch.nn.BatchNorm2d):
                    # gamma gets beta's estimate; beta's .grad stays empty (no guess backward ran)
                    (gamma, _), (_, beta_estimate) = shares
                    shares = [(gamma, beta_estimate)]
                for p, grad in shares:
                    self._set_grads([p], [grad])
        if traced is not None:
            self.trace[j] = traced
        return got[-1] if want_chain else None

    def _batch_weight_update(self, j, z, out, target, guess, want_chain):
        """``projection: batch``: block j's batch gradients T (target) and G (guess) by one backward
        each, then (T.G)/(||G||^2 + eps) G per parameter tensor, or (T.v) v for a random guess."""
        params = list(self.net.blocks[j].parameters())
        got = torch.autograd.grad(out, params + ([z] if want_chain else []), target, retain_graph=True)
        targets = got[:len(params)]
        if guess is not None:
            guesses = torch.autograd.grad(out, params, guess, retain_graph=True)
            grads = [project_batch(t, g) for t, g in zip(targets, guesses)]
        else:
            guesses = [draw_random(self.guess, t.shape, t.device, t.dtype) for t in targets]
            grads = [project_batch_random(t, v) for t, v in zip(targets, guesses)]
        self._set_grads(params, grads)
        if self.trace is not None:
            self.trace[j] = list(zip(params, targets, guesses))
        return got[-1] if want_chain else None


def _authors_bn_grads(records, projected, guess_deltas):
    """The authors' weight-space estimator on a batch norm (variant ``code``): the projection of the
    bias is written to ``weight.grad`` and the bias keeps the raw guess gradient sum_i g_i (what the
    guess pass's backward left there). ``projected``: ``projected_on_guess``'s list, in which a batch
    norm contributes (weight, ...) then (bias, ...)."""
    out, i = [], 0
    for (module, _, _), g_delta in zip(records, guess_deltas):
        if isinstance(module, torch.nn.BatchNorm2d):
            (gamma, _, gamma_dots), (beta, beta_grad, beta_dots) = projected[i], projected[i + 1]
            out += [(gamma, beta_grad, gamma_dots), (beta, g_delta.sum((0, 2, 3)), beta_dots)]
            i += 2
        else:
            out.append(projected[i])
            i += 1
    return out


# ---------------------------------------------------------------------------------------------


def evaluate(net, split: Batches) -> tuple[float, float]:
    return _evaluate(net, split, EVAL_BATCH)


def make_optimizer(net: SplitResNet, config: dict):
    """SGD (momentum 0.9, weight decay 5e-4, Section 4.1) on the network and trained auxiliaries;
    StepLR(lr_step, lr_gamma), stepped once per epoch."""
    params = net.trained_parameters()
    kwargs = dict(lr=float(config["lr"]), momentum=float(config["momentum"]),
                  weight_decay=float(config["weight_decay"]))
    try:
        opt = torch.optim.SGD(params, fused=True, **kwargs)  # one kernel for the whole update
    except (RuntimeError, TypeError):
        opt = torch.optim.SGD(params, **kwargs)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(config["lr_step"]), gamma=float(config["lr_gamma"]))
    return opt, sched


def setup(config: dict, device: torch.device, in_channels: int, n_classes: int):
    """Network, step rule, optimiser and scheduler of a run (shared with the benchmark)."""
    net = SplitResNet(config, in_channels, n_classes).to(device)
    stepper = Stepper(net, config)
    opt, sched = make_optimizer(net, config)
    return net, stepper, opt, sched


def _state(net, opt, sched, gens, curves, epoch, resumed) -> dict:
    return {"epoch": epoch, "resumed": resumed, "curves": curves, "net": net.state_dict(),
            "opt": opt.state_dict(), "sched": sched.state_dict(), "rng": torch.get_rng_state(),
            "gens": {k: g.get_state() for k, g in gens.items()},
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}



def _restore(path, net, opt, sched, gens, device) -> dict:
    ck = torch.load(path, map_location=device, weights_only=False)
    net.load_state_dict(ck["net"])
    opt.load_state_dict(ck["opt"])
    sched.load_state_dict(ck["sched"])
    torch.set_rng_state(ck["rng"])
    for k, g in gens.items():
        g.set_state(ck["gens"][k])
    if ck["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ck["cuda_rng"])
    return ck


def load_split(config: dict, data_root: str | None):
    name = config["dataset"]
    if name not in data.DATASETS:
        raise DataError(f"dataset '{name}' has no loader in benchmarks.data yet (known: "
                        f"{', '.join(data.DATASETS)}); run the tables that use it once its loader exists, "
                        f"or pick another dataset")
    # Only folder datasets (Imagenette) are decoded to a size; fixed-size arrays (CIFAR, MNIST, ...)
    # load at their native side and ``Batches.prep`` downsamples them when image_size is smaller.
    decoded = name in PAPER_DATASETS and PAPER_DATASETS[name]["side"] is None
    decoded_size = config.get("image_size") if decoded else None
    return data.load(name, config["data_source"], data_root, n_train=config.get("n_train"),
                     n_test=config.get("n_test"), image_size=decoded_size)


def train(config: dict, *, data_root: str | None = None, progress=None, checkpoint: str | None = None) -> dict:
    """Train one run. With ``checkpoint`` (a file path) the state is saved after every epoch and a
    run that finds the file resumes from it (SLURM preemption and time-outs requeue jobs)."""
    retain_freed_memory()  # the same numbers; no page faults on every step's fresh tensors
    with flush_denormals():  # the same numbers; CPU ops on subnormals are ~100x slower
        return _train(config, data_root=data_root, progress=progress, checkpoint=checkpoint)


def _train(config: dict, *, data_root, progress, checkpoint) -> dict:
    seed = int(config["seed"])
    device = pick_device()
    split = load_split(config, data_root)
    train_set = Batches(split.x_train, split.y_train, config["dataset"], config.get("image_size"), device)
    test_set = Batches(split.x_test, split.y_test, config["dataset"], config.get("image_size"), device,
                       stats=train_set.stats)

    torch.manual_seed(seed)
    net, stepper, opt, sched = setup(config, device, split.x_train.shape[1], split.n_classes)
    gens = {"shuffle": torch.Generator().manual_seed(seed), "augment": torch.Generator().manual_seed(seed + 1)}

    n_local = len(net.blocks) - 1
    curves = {"epoch": [], "train_loss": [], "test_acc": [], "test_loss": [], "lr": []}
    if net.aux is not None:
        curves["local_losses"] = []  # per epoch, the mean auxiliary loss of every block (Fig. 2)
    diverged = False
    epochs = int(config["epochs"])
    first, resumed = 1, 0
    if checkpoint and os.path.exists(checkpoint):
        ck = _restore(checkpoint, net, opt, sched, gens, device)
        first, resumed, curves = ck["epoch"] + 1, ck["resumed"] + 1, ck["curves"]
    for epoch in range(first, epochs + 1):
        net.train()
        lr = opt.param_groups[0]["lr"]
        loss_sum = torch.zeros((), device=device)
        local_sum = torch.zeros(n_local, device=device)
        steps = 0
        augment = gens["augment"] if config.get("augment") else None
        for xb, yb in train_set.batches(int(config["batch_size"]), gens["shuffle"], augment):
            loss = stepper.step(xb, yb)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_sum += loss
            if stepper.local_losses:
                local_sum += torch.stack(stepper.local_losses)
            steps += 1
        sched.step()
        train_loss = loss_sum.item() / max(steps, 1)
        if not math.isfinite(train_loss):
            diverged = True
            break
        test_acc, test_loss = evaluate(net, test_set)
        for k, v in (("epoch", epoch), ("train_loss", train_loss), ("test_acc", test_acc),
                     ("test_loss", test_loss), ("lr", lr)):
            curves[k].append(v)
        if "local_losses" in curves:
            curves["local_losses"].append([v / max(steps, 1) for v in local_sum.tolist()])
        if checkpoint:
            save_checkpoint(checkpoint, _state(net, opt, sched, gens, curves, epoch, resumed))
        if progress is not None:
            progress(epoch=epoch, epochs=epochs, train_loss=train_loss, test_acc=test_acc)

    metrics = final_metrics(net, train_set, curves, diverged, EVAL_BATCH)
    metrics.update(curves=curves, n_params=count_params(net.blocks) + count_params(net.head),
                   n_aux_params=count_params(net.aux) if net.aux is not None else 0,
                   epochs_run=len(curves["epoch"]), resumed=resumed)
    import torchvision

    return {"metrics": metrics,
            "data": {"dataset": config["dataset"], "source": config["data_source"], "kind": split.kind,
                     "description": split.description},
            "device": describe_device(device),
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__}}
