"""audit: what a buyer can check about a KV it did not compute.

Owns the spot check (``recompute``: k random chunks recomputed and compared) and the ways a
seller could alter an artifact (``tamper``), to measure what the check catches.

Imports: measure, forward, kv, model, rows, config.
"""
