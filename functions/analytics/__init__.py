"""Inference analytics: the storage layout shared with the CDK stack, the named queries, and the embedded default
(local Parquet lake writer, event generator, DuckDB query runner). ``python -m functions.analytics --help``."""
