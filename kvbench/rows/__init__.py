"""rows: the one row type every experiment emits, and where rows go.

Owns the schema (``schema``), the crash-safe store with resume (``store``, ``atomic``), the
commands that made a folder (``recipes``), which folders are the committed reference
(``reference``), provenance (``provenance``, ``git``), redaction of credentials (``redact``) and
tracking (``tracking``).

Imports: config only.
"""
