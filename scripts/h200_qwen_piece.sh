#!/usr/bin/env bash
# H200, one call per piece (carry: wheelhouse/qwen-NN, made by `make wheelhouse-qwen`), back to
# back on a warm machine: gpu_env.sh keeps each piece on the node, and joins and verifies the
# real Qwen's GGUF once all eight are there. Then scripts/h200_qwen.sh runs on it.
source scripts/gpu_env.sh && ls "$HOME/.cache/kvbench/pieces/"* "$HOME/.cache/kvbench/models" 2>/dev/null | tail -3
