"""Arrow schema of the lake, derived from the Glue types in ``layout.COLUMNS`` (parsed with sqlglot)."""
from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from functions.analytics import layout

_PRIMITIVES = {
    exp.DataType.Type.INT: pa.int32(),
    exp.DataType.Type.BIGINT: pa.int64(),
    exp.DataType.Type.DOUBLE: pa.float64(),
    exp.DataType.Type.TEXT: pa.string(),
    exp.DataType.Type.VARCHAR: pa.string(),
    exp.DataType.Type.BOOLEAN: pa.bool_(),
}


def arrow_type(glue_type: str) -> pa.DataType:
    """``array<struct<label:string,...>>`` -> the equivalent Arrow type."""
    return _convert(exp.DataType.build(glue_type, dialect="hive"))


def _convert(dtype: exp.DataType) -> pa.DataType:
    if dtype.this in _PRIMITIVES:
        return _PRIMITIVES[dtype.this]
    if dtype.this == exp.DataType.Type.ARRAY:
        return pa.list_(_convert(dtype.expressions[0]))
    if dtype.this == exp.DataType.Type.STRUCT:
        return pa.struct([pa.field(f.this.name, _convert(f.args["kind"])) for f in dtype.expressions])
    raise ValueError(f"no Arrow mapping for Glue type {dtype.sql('hive')}")


EVENT_SCHEMA = pa.schema([pa.field(name, arrow_type(glue_type)) for name, glue_type, _ in layout.COLUMNS])
