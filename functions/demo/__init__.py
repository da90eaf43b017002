"""``make demo`` / ``python -m functions.demo``: the whole system end to end on one machine, offline
(see docs/demo.md)."""
