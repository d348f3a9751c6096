"""kv: the KV artifact a publisher sells and a reader loads.

Owns the format (``artifact``: tensors, provenance, binding to model, tokenizer and document;
``safetensors_blob``: the byte layout) and the corruption checks (``checksum``).

Imports: model (token-id hashes), rows, config. Never a forward, a tier or a codec.
"""
