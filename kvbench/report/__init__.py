"""Paper figures and tables, made from committed rows only (never by re-running models)."""
