"""python -m model {train,evaluate,export,publish} ... (see README "Model pipeline")."""
from __future__ import annotations

import argparse
import json
import sys

from model.contract import DEFAULT_CLASSES


def _classes(text: str) -> list:
    classes = [c.strip() for c in text.split(",") if c.strip()]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise argparse.ArgumentTypeError(f"need at least two distinct comma-separated class names, got {text!r}")
    return classes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune SqueezeNet 1.1 on DATA/<class>/*.jpg")
    p.add_argument("data", help="image folder with one sub-folder per class")
    p.add_argument("--out", required=True, help="run directory: best.params, metrics.json, training_curves.png")
    p.add_argument("--classes", type=_classes, default=list(DEFAULT_CLASSES),
                   help="comma-separated class folders, in output order (default: mask,no_mask)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.0003, help="Adam learning rate")
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

    user_errors = (ExportError, PublishError)
    if args.command != "publish":
        from model.dataset import DatasetError
        from model.network import PretrainedUnavailable

        user_errors += (DatasetError, PretrainedUnavailable)
    else:
        from botocore.exceptions import BotoCoreError, ClientError

        user_errors += (BotoCoreError, ClientError)
    try:
        if args.command == "train":
            from model.train import train

            metrics = train(args.data, args.out, args.classes, epochs=args.epochs, batch_size=args.batch_size,
                            lr=args.lr, val_fraction=args.val_fraction, seed=args.seed, pretrained=args.pretrained,
                            weights_dir=args.weights_dir)
            print(f"best epoch {metrics['best_epoch']}: validation accuracy {metrics['best_val_acc']:.3f} "
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
