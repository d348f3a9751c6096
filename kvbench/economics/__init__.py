"""economics: the cost model, from committed rows and a sourced price sheet only.

Owns the priced arithmetic (``cost``), the measured inputs read from rows of any vintage
(``inputs``), crossover lengths (``crossover``), the paper's scenario (``scenario``) and the
savings calculator (``savings``, its ``key=value`` question in ``savings_args``):
``python -m kvbench.economics.savings tokens=3774 reads=80e6 tier=host model=qwen3_4b`` (also
``python -m kvbench.savings``) prices one document read many times from the committed rows and
the price sheet, every figure with its source row or price.

Imports: rows, config. Never torch, a model, a forward, a tier or an experiment.
"""
