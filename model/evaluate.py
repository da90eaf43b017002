"""`python -m model evaluate`: accuracy, per-class precision/recall and confusion matrix of an export on a folder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model import bootstrap, contract, dataset, plots


def group_interval(correct, groups, resamples: int = 1000, level: float = 0.9, seed: int = 0) -> dict:
    """How sure an accuracy is when images come in groups (one person's variants are not independent): whole groups
    resampled with replacement; the central ``level`` interval of the resampled accuracies and the share of them
    below each of ``0.95`` (the issue's target)."""
    correct, groups = np.asarray(correct, dtype=bool), np.asarray(groups)
    if len(correct) != len(groups):
        raise ValueError(f"{len(groups)} groups for {len(correct)} results")
    if not len(correct):
        return {"low": None, "high": None, "below_0.95": None, "groups": 0, "resamples": 0}
    index, picks = bootstrap.group_picks(groups, resamples, seed)
    n_groups = picks.shape[1]
    right = np.bincount(index, weights=correct.astype(float), minlength=n_groups)
    total = np.bincount(index, minlength=n_groups).astype(float)
    accuracy = right[picks].sum(axis=1) / total[picks].sum(axis=1)
    low, high = bootstrap.central(accuracy, level)
    return {"low": low, "high": high, "below_0.95": float((accuracy < 0.95).mean()),
            "groups": int(n_groups), "resamples": resamples, "level": level}


def confusion(labels, predictions, num_classes: int) -> list:
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for true, pred in zip(labels, predictions, strict=True):
        matrix[true, pred] += 1
    return matrix.tolist()


def report(matrix, classes) -> dict:
    m = np.array(matrix)
    total = int(m.sum())
    per_class = {}
    for i, cls in enumerate(classes):
        predicted, actual = int(m[:, i].sum()), int(m[i, :].sum())
        per_class[cls] = {"precision": float(m[i, i] / predicted) if predicted else None,
                          "recall": float(m[i, i] / actual) if actual else None,
                          "support": actual}
    return {"images": total, "accuracy": float(np.trace(m) / total) if total else None, "per_class": per_class,
            "confusion_matrix": {"classes": list(classes), "rows_true_cols_predicted": m.tolist()}}


def as_text(result) -> str:
    classes = result["confusion_matrix"]["classes"]
    width = max(9, *(len(c) for c in classes)) + 2
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"images: {result['images']}   accuracy: {fmt(result['accuracy'])}", "",
             "class".ljust(width) + "precision  recall  support"]
    for cls, row in result["per_class"].items():
        lines.append(cls.ljust(width) + f"{fmt(row['precision']):>9}  {fmt(row['recall']):>6}  {row['support']:>7}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)", " " * width + "".join(c.rjust(width)
                                                                                          for c in classes)]
    for cls, row in zip(classes, result["confusion_matrix"]["rows_true_cols_predicted"], strict=True):
        lines.append(cls.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def evaluate(export_dir, data_dir, out_dir, runtime="mxnet", batch_size=32, progress=True) -> dict:
    from tqdm import tqdm

    from model import export as exporter

    manifest = contract.check_export(export_dir)
    classes, files = manifest["classes"], manifest["files"]
    samples = dataset.list_images(data_dir, classes)
    export_dir = Path(export_dir)
    if runtime == "onnx":
        session = exporter.load_onnx(export_dir / files["onnx"])
        run = lambda x: session.run(None, {contract.INPUT_NAME: x})[0]  # noqa: E731
    elif runtime == "mxnet":
        import mxnet as mx

        net = exporter.load_mxnet(export_dir / files["symbol"], export_dir / files["params"])
        run = lambda x: net(mx.nd.array(x)).asnumpy()  # noqa: E731
    else:
        raise ValueError(f"runtime must be mxnet or onnx, got {runtime!r}")
    labels: list[int] = []
    predictions: list[int] = []
    for x, y in tqdm(dataset.batches(samples, batch_size), total=-(-len(samples) // batch_size), desc="evaluate",
                     unit="batch", disable=not progress):
        predictions.extend(int(p) for p in run(x).argmax(axis=1))
        labels.extend(int(v) for v in y)
    result = report(confusion(labels, predictions, len(classes)), classes)
    result.update({"model": f"{manifest['name']} {manifest['version']}", "runtime": runtime,
                   "data_dir": str(data_dir), "pretrained": manifest["pretrained"]})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "evaluation.txt").write_text(as_text(result) + "\n")
    plots.confusion_matrix(result["confusion_matrix"]["rows_true_cols_predicted"], classes,
                           out_dir / "confusion_matrix.png",
                           title=f"{manifest['name']} {manifest['version']} ({runtime})")
    return result
