"""measure: how numbers are taken and what they are held against.

Owns timing and robust statistics (``timing``), the device's measured ceilings
(``calibrate``), roofline floors (``floors``) from analytic FLOPs and bytes (``flops``),
exactness (``exactness``, ``exactness_fast``) and the entropy of KV tensors (``entropy``).

Imports: forward, kv, model, rows, config. Never a tier, a codec or an experiment.
"""
