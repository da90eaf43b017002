"""`python -m model train`: train (or fine-tune) SqueezeNet 1.1 on an image folder; keeps the best checkpoint by
validation accuracy, writes metrics.json and training_curves.png into the run directory.

Data: ``DATA/{train,val[,test]}/<class>/`` as ``python -m model dataset`` writes it (split by identity: the
validation figure is on people the model never saw), else ``DATA/<class>/`` with a seeded stratified split by image.

Converging from scratch (issue 17: SqueezeNet has no BatchNorm, and its head ends in a ReLU, so a bad first steps
can zero every logit and training never starts): He-initialized features, a head with a positive bias, a linear
learning-rate warm-up over the first ``warmup_epochs`` then a cosine decay to 2% of ``lr``, gradient clipping,
class-balanced epochs and augmentation. After training the best checkpoint is evaluated on the ``test`` split
(held-out identities) when there is one."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from tqdm import tqdm

from model import dataset, network, plots

RUN_CONFIG = "run.json"
CHECKPOINT = "best.params"
METRICS = "metrics.json"
CURVES = "training_curves.png"


def _evaluate(net, samples, batch_size, loss_fn, with_spread=False):
    """(loss, accuracy[, spread]): ``spread`` is the largest range of a logit over the samples (0: the network gives
    every input the same answer)."""
    total_loss, correct, low, high = 0.0, 0, None, None
    for x, y in dataset.batches(samples, batch_size, cache=True):
        logits = net(mx.nd.array(x))
        total_loss += float(loss_fn(logits, mx.nd.array(y)).sum().asscalar())
        correct += int((logits.argmax(axis=1).asnumpy().astype(np.int64) == y).sum())
        values = logits.asnumpy()
        low = values.min(axis=0) if low is None else np.minimum(low, values.min(axis=0))
        high = values.max(axis=0) if high is None else np.maximum(high, values.max(axis=0))
    result = total_loss / len(samples), correct / len(samples)
    if not with_spread:
        return result
    if low is None or high is None:   # unreachable: without samples the division above has failed
        raise ValueError("no samples")
    return result + (float((high - low).max()),)


# Without BatchNorm, SqueezeNet can die: its head is conv -> ReLU -> average pool, and its features a stack of ReLUs.
# Once every logit is 0 (dead head), or the same for every input (dead features: only the head's bias is left),
# no gradient can bring it back and the run sits at chance (the "8 epochs, nothing learnt" failure; seen here with
# Adam at 1e-3 and 2e-3). That state is detected after each epoch and the run starts over with another
# initialization and half the learning rate, at most this many times.
MAX_RESTARTS = 3
COLLAPSED_SPREAD = 1e-6
# A run of 16 epochs or more whose best validation accuracy is still below STALLED_ACC after a sixth of its epochs
# (at least 5) has not started learning either: it starts over the same way.
STALLED_ACC = 0.6


def stall_epoch(epochs: int):
    """The epoch after which a run that has not learnt starts over (None: runs too short to tell)."""
    return max(5, epochs // 6) if epochs >= 16 else None


class TrainingFailed(Exception):
    """Training ran but the model did not reach the accuracy asked for; the message has the figures."""


DECAY_SHARE = 0.25   # the last quarter of the run decays the learning rate
SHORT_RUN = 4        # runs of fewer epochs keep a constant learning rate (no warm-up, no decay)


def learning_rate(step: int, total: int, warmup: int, peak: float, decay: bool = True) -> float:
    """Linear warm-up from 10% of ``peak`` over ``warmup`` steps, ``peak`` until the last quarter of the run, then
    cosine decay to 2% of ``peak`` at ``total``. (From scratch the network learns late: a cosine decay over the
    whole run spent the learning rate before it had started.)"""
    if warmup and step < warmup:
        return peak * (0.1 + 0.9 * step / warmup)
    decay_from = max(warmup, int(total * (1 - DECAY_SHARE)))
    if not decay or step < decay_from:
        return peak
    progress = (step - decay_from) / max(1, total - decay_from)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _splits(data_dir, classes, val_fraction, seed):
    """(train, val, test, how): the dataset's own split folders, else a stratified random split (no test)."""
    if dataset.has_splits(data_dir):
        parts = dataset.list_splits(data_dir, classes)
        return parts["train"], parts["val"], parts["test"], "by identity (the dataset's train/val folders)"
    train_set, val_set = dataset.split(dataset.list_images(data_dir, classes), val_fraction, seed)
    return train_set, val_set, [], "random by image, stratified by class (NOT by identity)"


class _Run:
    """One training attempt: the network, its optimizer and the schedule; ``epoch`` trains one epoch."""

    def __init__(self, n_classes, seed, lr, optimizer, pretrained, weights_dir, schedule):
        network.seed_everything(seed)
        self.net = network.build(n_classes, pretrained=pretrained, weights_dir=weights_dir)
        self.net.hybridize(static_alloc=True, static_shape=True)
        extra = {"momentum": 0.9} if optimizer in ("sgd", "nag") else {}
        self.trainer = gluon.Trainer(self.net.collect_params(), optimizer,
                                     dict({"learning_rate": lr, "wd": 1e-4, "clip_gradient": 5.0}, **extra))
        self.lr, self.schedule, self.step = lr, schedule, 0

    def epoch(self, batches, loss_fn, bar):
        seen, total_loss, correct = 0, 0.0, 0
        for x, y in bar(batches):
            total, warmup, decay = self.schedule
            self.trainer.set_learning_rate(learning_rate(self.step, total, warmup, self.lr, decay=decay))
            self.step += 1
            with autograd.record():
                logits = self.net(mx.nd.array(x))
                loss = loss_fn(logits, mx.nd.array(y))
            loss.backward()
            self.trainer.step(len(y))
            total_loss += float(loss.sum().asscalar())
            correct += int((logits.argmax(axis=1).asnumpy().astype(np.int64) == y).sum())
            seen += len(y)
            bar.postfix(total_loss / seen, correct / seen)
        return total_loss / seen, correct / seen, seen


class _Bar:
    def __init__(self, progress, total, desc):
        self.progress, self.total, self.desc, self.tqdm = progress, total, desc, None

    def __call__(self, iterable):
        self.tqdm = tqdm(iterable, total=self.total, desc=self.desc, unit="batch", disable=not self.progress,
                         leave=True)
        return self.tqdm

    def postfix(self, loss, acc):
        if self.tqdm is None:
            raise RuntimeError("postfix() called before bar(batches)")
        self.tqdm.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}")


def _say(progress, text):
    if progress:
        tqdm.write(text)


def _kept(best: dict | None) -> dict:
    if best is None:   # unreachable: the last attempt never starts over, so its first epoch at least was kept
        raise RuntimeError("training kept no epoch")
    return best


def train(data_dir, out_dir, classes, epochs=10, batch_size=32, lr=0.0003, val_fraction=0.2, seed=0,
          pretrained=True, weights_dir=None, progress=True, warmup_epochs=None, min_val_acc=None,
          optimizer="adam") -> dict:
    """Trains and returns the metrics dict (also written to ``out_dir/metrics.json``). ``min_val_acc``: raise
    TrainingFailed when the best validation accuracy stays below it."""
    classes = list(classes)
    if epochs < 1 or batch_size < 1:
        raise dataset.DatasetError("epochs and batch size must be at least 1")
    train_set, val_set, test_set, split_how = _splits(data_dir, classes, val_fraction, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    short = epochs < SHORT_RUN   # a smoke run (tests, model.testing): the plain constant learning rate
    if warmup_epochs is None:   # a tenth of the run, at most one epoch
        warmup_epochs = 0.0 if short else min(1.0, epochs / 10)
    rng = np.random.RandomState(seed)
    steps_per_epoch = -(-len(dataset.balanced_order(train_set, np.random.RandomState(0))) // batch_size)
    schedule = (epochs * steps_per_epoch, int(round(warmup_epochs * steps_per_epoch)), not short)
    samples = train_set + val_set
    config = {"data_dir": str(data_dir), "classes": classes, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "optimizer": optimizer,
              "lr_schedule": f"linear warm-up {warmup_epochs:g} epoch(s), constant, cosine decay to 2% over the last "
                             f"{DECAY_SHARE:.0%}" if not short else "constant",
              "val_fraction": val_fraction, "split": split_how, "seed": seed, "pretrained": bool(pretrained),
              "train_images": len(train_set), "val_images": len(val_set), "test_images": len(test_set),
              "per_class": {c: sum(1 for s in samples if s.label == i) for i, c in enumerate(classes)}}
    (out_dir / RUN_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    restarts, peak_lr = [], lr
    for attempt in range(MAX_RESTARTS + 1):
        run = _Run(len(classes), seed + 1000 * attempt, peak_lr, optimizer, pretrained, weights_dir, schedule)
        history, best, collapsed = [], None, False
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            batches = dataset.batches(train_set, batch_size, rng, train=True, cache=True, balance=True)
            train_loss, train_acc, seen = run.epoch(batches, loss_fn,
                                                    _Bar(progress, steps_per_epoch, f"epoch {epoch}/{epochs}"))
            seconds = time.perf_counter() - started
            val_loss, val_acc, spread = _evaluate(run.net, val_set, batch_size, loss_fn, with_spread=True)
            row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                   "val_acc": val_acc, "lr": run.trainer.learning_rate, "seconds": seconds,
                   "train_images_per_s": seen / seconds}
            history.append(row)
            best_acc = max(val_acc, best["val_acc"] if best else 0.0)
            dead, stalled = spread < COLLAPSED_SPREAD, epoch == stall_epoch(epochs) and best_acc < STALLED_ACC
            collapsed = (dead or stalled) and attempt < MAX_RESTARTS
            if collapsed:
                why = (f"the network answers every input alike (logit range {spread:.1e}: dead ReLUs)" if dead else
                       f"best validation accuracy {best_acc:.3f} after {epoch} epochs: it has not started learning")
                restarts.append({"attempt": attempt, "epoch": epoch, "lr": peak_lr, "why": why})
                _say(progress, f"epoch {epoch}: {why}: starting over with another initialization and learning rate "
                               f"{peak_lr / 2:g}")
                peak_lr /= 2
                break
            improved = best is None or (val_acc, -val_loss) > (best["val_acc"], -best["val_loss"])
            if improved:
                best = row
                run.net.save_parameters(str(out_dir / CHECKPOINT))
            _say(progress, f"epoch {epoch}: train loss {train_loss:.4f} acc {train_acc:.3f} | val loss "
                           f"{val_loss:.4f} acc {val_acc:.3f}{'  (best so far, saved)' if improved else ''}")
        if not collapsed:
            break
    best = _kept(best)

    metrics = {"best_epoch": best["epoch"], "best_val_acc": best["val_acc"], "best_val_loss": best["val_loss"],
               "train_images": len(train_set), "val_images": len(val_set), "pretrained": bool(pretrained),
               "split": split_how, "seed": seed, "restarts": restarts, "history": history}
    if test_set:
        run.net.load_parameters(str(out_dir / CHECKPOINT))
        test_loss, test_acc = _evaluate(run.net, test_set, batch_size, loss_fn)
        metrics.update(test_acc=test_acc, test_loss=test_loss, test_images=len(test_set))
        _say(progress, f"best checkpoint (epoch {best['epoch']}) on the test split (held-out identities): "
                       f"accuracy {test_acc:.3f} on {len(test_set)} images")
    (out_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    plots.training_curves(history, out_dir / CURVES)
    if min_val_acc is not None and best["val_acc"] < min_val_acc:
        raise TrainingFailed(f"best validation accuracy {best['val_acc']:.3f} (epoch {best['epoch']}) is below the "
                             f"{min_val_acc:.3f} asked for; see {out_dir / CURVES}")
    return metrics


def load_checkpoint(run_dir):
    """(logits network with the best weights, run config) from a `train` output directory."""
    run_dir = Path(run_dir)
    for name in (RUN_CONFIG, CHECKPOINT):
        if not (run_dir / name).is_file():
            raise dataset.DatasetError(f"{run_dir / name}: missing; is {run_dir} a `python -m model train` output?")
    config = json.loads((run_dir / RUN_CONFIG).read_text())
    net = network.build(len(config["classes"]), pretrained=False)
    net.load_parameters(str(run_dir / CHECKPOINT))
    metrics_path = run_dir / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return net, config, metrics
