"""kv: the KV artifact a publisher sells and a reader loads.

Owns the format (``artifact``: tensors, provenance, binding to model and tokenizer;
``safetensors_blob``: the byte layout), the binding to the buyer's document (``binding``:
length and token-id hash) and the corruption checks (``checksum``).

Imports: model (token-id hashes), rows, config. Never a forward, a tier or a codec.
"""
