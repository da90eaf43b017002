"""Where the device application lives and what of it is deployed (the Lambda asset and the Greengrass artifact)."""
from __future__ import annotations

from pathlib import Path

EDGE_DIR = Path(__file__).resolve().parents[2] / "functions" / "edge"
EDGE_EXCLUDES = ["tests", "**/tests", "**/__pycache__", "*.pyc", "**/*.pyc", ".pytest_cache", "*.egg-info",
                 "maskcam-spool", "*.jsonl"]
