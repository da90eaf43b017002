"""`python -m model train`: fine-tune SqueezeNet 1.1 on an image folder; keeps the best checkpoint by validation
accuracy, writes metrics.json and training_curves.png into the run directory."""
from __future__ import annotations

import json
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


def _evaluate(net, samples, batch_size, loss_fn):
    total_loss, correct = 0.0, 0
    for x, y in dataset.batches(samples, batch_size):
        logits = net(mx.nd.array(x))
        total_loss += float(loss_fn(logits, mx.nd.array(y)).sum().asscalar())
        correct += int((logits.argmax(axis=1).asnumpy().astype(np.int64) == y).sum())
    return total_loss / len(samples), correct / len(samples)


def train(data_dir, out_dir, classes, epochs=10, batch_size=32, lr=0.0003, val_fraction=0.2, seed=0,
          pretrained=True, weights_dir=None, progress=True) -> dict:
    """Trains and returns the metrics dict (also written to ``out_dir/metrics.json``)."""
    classes = list(classes)
    if epochs < 1 or batch_size < 1:
        raise dataset.DatasetError("epochs and batch size must be at least 1")
    samples = dataset.list_images(data_dir, classes)
    train_set, val_set = dataset.split(samples, val_fraction, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    network.seed_everything(seed)
    net = network.build(len(classes), pretrained=pretrained, weights_dir=weights_dir)
    net.hybridize(static_alloc=True, static_shape=True)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": lr, "wd": 1e-4})
    rng = np.random.RandomState(seed)

    config = {"data_dir": str(data_dir), "classes": classes, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "val_fraction": val_fraction, "seed": seed, "pretrained": bool(pretrained),
              "train_images": len(train_set), "val_images": len(val_set),
              "per_class": {c: sum(1 for s in samples if s.label == i) for i, c in enumerate(classes)}}
    (out_dir / RUN_CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    history, best = [], None
    for epoch in range(1, epochs + 1):
        started, seen, total_loss, correct = time.perf_counter(), 0, 0.0, 0
        bar = tqdm(dataset.batches(train_set, batch_size, rng, train=True), total=-(-len(train_set) // batch_size),
                   desc=f"epoch {epoch}/{epochs}", unit="batch", disable=not progress, leave=True)
        for x, y in bar:
            data, label = mx.nd.array(x), mx.nd.array(y)
            with autograd.record():
                logits = net(data)
                loss = loss_fn(logits, label)
            loss.backward()
            trainer.step(len(y))
            total_loss += float(loss.sum().asscalar())
            correct += int((logits.argmax(axis=1).asnumpy().astype(np.int64) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
        seconds = time.perf_counter() - started
        val_loss, val_acc = _evaluate(net, val_set, batch_size, loss_fn)
        row = {"epoch": epoch, "train_loss": total_loss / seen, "train_acc": correct / seen, "val_loss": val_loss,
               "val_acc": val_acc, "seconds": seconds, "train_images_per_s": seen / seconds}
        history.append(row)
        improved = best is None or (val_acc, -val_loss) > (best["val_acc"], -best["val_loss"])
        if improved:
            best = row
            net.save_parameters(str(out_dir / CHECKPOINT))
        if progress:
            tqdm.write(f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.3f} | "
                       f"val loss {val_loss:.4f} acc {val_acc:.3f}{'  (best so far, saved)' if improved else ''}")

    metrics = {"best_epoch": best["epoch"], "best_val_acc": best["val_acc"], "best_val_loss": best["val_loss"],
               "train_images": len(train_set), "val_images": len(val_set), "pretrained": bool(pretrained),
               "history": history}
    (out_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    plots.training_curves(history, out_dir / CURVES)
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
