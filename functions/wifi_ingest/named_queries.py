"""The Wi-Fi chart queries: one ``queries/<name>.sql`` each, Athena (Trino) dialect, first line ``-- <description>``,
tables as ``${database}.<table>`` (string.Template). The stack turns them into Athena named queries; tests run them
locally with DuckDB after transpiling with sqlglot.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Tuple

QUERY_DIR = Path(__file__).resolve().parent / "queries"


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    template: str

    def render(self, database: str) -> str:
        return Template(self.template).substitute(database=database)


def load(directory: Path = QUERY_DIR) -> Tuple[NamedQuery, ...]:
    queries = []
    for path in sorted(directory.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        first, _, body = text.partition("\n")
        if not first.startswith("-- "):
            raise ValueError(f"{path}: the first line must be '-- <description>'")
        queries.append(NamedQuery(name=path.stem, description=first[3:].strip(), template=body.strip()))
    return tuple(queries)
