"""rows: the one row type every experiment emits, and where rows go.

Owns the schema (``schema``), the crash-safe store with resume (``store``, ``atomic``),
provenance (``provenance``), redaction of credentials (``redact``) and tracking (``tracking``).

Imports: config only.
"""
