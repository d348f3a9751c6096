"""report: the paper's figures and tables, from committed rows only (never by re-running models).

Imports: economics, rows, config. Never torch, a model, a forward, a tier or an experiment.
"""
