"""Where one normalization run puts its files, and the run itself with the failure path (CLI and Lambda)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import BinaryIO
from collections.abc import Callable

from functions.wifi_ingest.normalize import Report, UnusableFile, normalize


@dataclass(frozen=True)
class LocalOutputs:
    data: str
    rejects: str
    report: str

    @classmethod
    def in_dir(cls, out_dir: str, stem: str) -> LocalOutputs:
        base = os.path.join(out_dir, stem)
        return cls(data=base + ".parquet", rejects=base + ".rejects.csv", report=base + ".report.json")


def run(stream: BinaryIO, outputs: LocalOutputs, *, source: str,
        progress: Callable[[int], None] | None = None) -> Report:
    """Normalizes ``stream`` into ``outputs`` and writes the report there too.

    When the file is unusable the report says so (``status`` "failed", ``error``) and no table data is left."""
    for stale in (outputs.data, outputs.rejects):
        if os.path.exists(stale):
            os.remove(stale)
    try:
        report = normalize(stream, outputs.data, outputs.rejects, source=source, progress=progress)
    except UnusableFile as err:
        for partial in (outputs.data, outputs.rejects):
            if os.path.exists(partial):
                os.remove(partial)
        report = Report(source=source, status="failed", error=str(err),
                        outputs={"data": None, "rejects": None})
    report.outputs["report"] = outputs.report
    with open(outputs.report, "w", encoding="utf-8") as f:
        json.dump(report.as_dict(), f, ensure_ascii=False, indent=2, default=str)
    return report
