"""economics: the cost model, from committed rows and a sourced price sheet only.

Owns the priced arithmetic (``cost``), the measured inputs read from rows of any vintage
(``inputs``), crossover lengths (``crossover``) and the paper's scenario (``scenario``).

Imports: rows, config. Never torch, a model, a forward, a tier or an experiment.
"""
