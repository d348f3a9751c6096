"""model: a model and tokenizer by spec, and the documents they read.

Owns loading (``loading``: embedded, GGUF, hub, random weights by architecture), model files
checked by SHA-256 (``files``, ``packaged``), architecture shapes (``architectures``) and the
corpus of exact-length documents with their token-id hashes (``corpus``).

Imports: config, rows. Never the KV format, a reader or an experiment.
"""
