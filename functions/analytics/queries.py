"""Named Athena queries kept as ``.sql`` files: one file per query, file stem = query name.

File convention (shared with other packages' query directories):

- Athena (Trino) dialect; the first line is ``-- <description>``;
- tables are written ``${database}.<table>`` (``string.Template`` placeholders);
- other placeholders need a default declared on a comment line ``-- param: name=value``.

The CDK stack registers every file as an Athena named query; the local runner executes the same files with DuckDB
(translated by sqlglot), so no query exists twice.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from collections.abc import Iterable, Mapping

QUERIES_DIR = Path(__file__).resolve().parent / "queries"


def project_query_dirs() -> tuple:
    """Every named-query directory of the project: inference analytics, then the Wi-Fi charts."""
    from functions.wifi_ingest.layout import QUERIES_DIR as WIFI_QUERIES_DIR

    return (QUERIES_DIR, WIFI_QUERIES_DIR)
_PARAM_RE = re.compile(r"^--\s*param:\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S+)\s*$")
_SAFE_VALUE_RE = re.compile(r"^[A-Za-z0-9_.:+-]{1,64}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,127}$")


class QueryFileError(ValueError):
    """A query file that does not follow the convention; the message names the file and the problem."""


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    template: str
    params: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @property
    def is_view(self) -> bool:
        """True for ``CREATE [OR REPLACE] VIEW`` files: run once after deploy, not a dashboard query."""
        body = "\n".join(line for line in self.template.splitlines() if not line.lstrip().startswith("--"))
        return re.match(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?VIEW\b", body, re.IGNORECASE) is not None

    def render(self, database: str, **overrides: object) -> str:
        """The query text with ``${database}`` and the parameters filled in (defaults, then ``overrides``)."""
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            raise QueryFileError(f"query {self.name}: unknown parameter(s) {', '.join(unknown)}; "
                                 f"it takes {', '.join(sorted(self.params)) or 'none'}")
        values = {**self.params, **{k: str(v) for k, v in overrides.items()}}
        for key, value in values.items():
            if not _SAFE_VALUE_RE.match(value):
                raise QueryFileError(f"query {self.name}: parameter {key}={value!r} must match "
                                     f"{_SAFE_VALUE_RE.pattern} (values are pasted into SQL)")
        return Template(self.template).substitute(values, database=database)


def parse(path: Path) -> NamedQuery:
    text = path.read_text(encoding="utf-8")
    name = path.stem
    if not _NAME_RE.match(name):
        raise QueryFileError(f"{path}: file stem {name!r} is not a valid query name ([a-z][a-z0-9_]*)")
    lines = text.splitlines()
    if not lines or not lines[0].startswith("--") or not lines[0][2:].strip():
        raise QueryFileError(f"{path}: first line must be '-- <description>'")
    params = {}
    for line in lines[1:]:
        match = _PARAM_RE.match(line.strip())
        if match:
            params[match.group(1)] = match.group(2)
    template = Template(text)
    if not template.is_valid():
        raise QueryFileError(f"{path}: malformed ${{...}} placeholder")
    used = set(template.get_identifiers())
    if "database" not in used:
        raise QueryFileError(f"{path}: tables must be referenced as ${{database}}.<table>")
    undeclared = sorted(used - set(params) - {"database"})
    if undeclared:
        raise QueryFileError(f"{path}: placeholder(s) {', '.join(undeclared)} need a '-- param: name=default' line")
    return NamedQuery(name=name, description=lines[0][2:].strip(), template=text, params=params, path=path)


def load(*dirs: Path) -> list[NamedQuery]:
    """Every ``*.sql`` file of ``dirs`` (default: all of the project's), sorted by name; names must be unique."""
    found: dict[str, NamedQuery] = {}
    for directory in dirs or project_query_dirs():
        directory = Path(directory)
        if not directory.is_dir():
            raise QueryFileError(f"query directory {directory} does not exist")
        for path in sorted(directory.glob("*.sql")):
            query = parse(path)
            if query.name in found:
                raise QueryFileError(f"query name {query.name!r} is defined twice: {found[query.name].path} "
                                     f"and {path}")
            found[query.name] = query
    return [found[name] for name in sorted(found)]


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``["silent_minutes=10", ...]`` -> dict; raises QueryFileError on a pair without '='."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise QueryFileError(f"parameter {pair!r} is not name=value")
        out[key.strip()] = value.strip()
    return out


def applicable(overrides: Mapping[str, str], query: NamedQuery) -> dict[str, str]:
    """The subset of ``overrides`` this query declares (a CLI may pass one set of parameters to many queries)."""
    return {k: v for k, v in overrides.items() if k in query.params}

