"""config: what a run may be asked to do, checked before anything loads.

Owns the structured configs Hydra composes into (``schema``), the price sheet's schema
(``prices``), the allowed values (``names``) and named things (``catalog``: codecs,
architectures) and their FLOP and KV-byte arithmetic (``shape_math``), names and paths as text
(``paths``), and the one-line errors (``errors``, ``hydra_errors``).

Imports: nothing else of kvbench. Every other part may import it.
"""
