"""forward: the ways a model runs over a document and a question.

Owns HF's own passes (``inference``: prefill, reuse, greedy continuation), the readers
(``readers``: fast, graph, hf), the fast forward (``fast``), its attention over a shared
prefix (``attention``), the static-cache graph reader (``graph``) and CUDA-graph replay
(``cuda_graph``).

Imports: kv, model, rows, config. Never a tier, a codec, a measurement or an experiment.
"""
