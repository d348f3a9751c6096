#!/usr/bin/env bash
# H200 call C (carry: wheelhouse/model-b; call B's files still on the node): the GPU tests (they
# need the embedded model's tokenizer), then SmolLM2 (real weights) through every reader with
# exactness over 8 documents x 24 greedy tokens, on a KV that went through serialisation.
set -uo pipefail
source scripts/gpu_env.sh
quiet() { grep -v -E "it/s|s/it|━|Warning|warn\(" ; }
timeout 60 python3 -m pytest -q -p no:cacheprovider -p no:valkey -m gpu tests/test_gpu.py 2>&1 | tail -4
timeout 200 python3 -m kvbench +exp=sweep model=smollm2 results_dir=new 'doc_tokens=[1024,3774]' exactness.enabled=true \
    exactness.num_docs=8 timing.docs=2 timing.warmup=1 2>&1 | quiet
tar czf "$OUT/c.tgz" new
