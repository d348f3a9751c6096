#!/usr/bin/env bash
# H200 (either kind): the exactness matrix (conf/exp/exactness.yaml) as queues of single points,
# several worker processes per GPU, running in their own process session so that they outlive the
# call that starts them and keep going through the calls that carry the real Qwen's pieces.
#   bash scripts/h200_exactness_queue.sh start smollm2|qwen WORKERS_PER_GPU   returns at once
#   bash scripts/h200_exactness_queue.sh collect [WAIT_S]    waits up to WAIT_S for the queues,
#                                                             then tars rows + logs into $OUT
# Calls, back to back on one warm machine (it is given back after 30 s idle, and the queues die
# with it): carry wheelhouse/base + model-a, then model-b and `start smollm2 3`; then the eight
# wheelhouse/qwen-NN pieces (each call may `collect 0`), the last with `start qwen 4`; then
# `collect` calls until the budget ends. Each collect returns every row finished so far.
# The experiment records no latency (timing.enabled=false), so points may share a GPU: HF eager
# decoding of a small model is launch-bound and leaves the GPU mostly idle. A point still
# running when the machine goes back is lost; a later start resumes past the points done.
# The queues run from a copy of the tree (RUN below) in the git-ignored .gpu/, which calls leave
# alone: each call re-copies the tracked tree, which would replace rows.jsonl under a running writer.
set -uo pipefail
RUN=.gpu/exactness-queue
NGPU=$(nvidia-smi -L | wc -l)

queue() {  # the points, most wanted first: one line of overrides each
    local m=$1
    if [ "$m" = qwen ]; then m=qwen2_5_0_5b; else m=smollm2; fi
    local long=16384; [ "$m" = smollm2 ] && long=8000  # SmolLM2's context is 8192
    for L in 4096 $long 256; do
        for dt in bfloat16 float16 float32; do echo "model=$m dtype=$dt doc_tokens=[$L]"; done
    done
    echo "model=$m dtype=bfloat16 exactness.reference_attn_impl=eager doc_tokens=[1024]"  # kernel control
    if [ "$m" = smollm2 ]; then
        for dt in bfloat16 float16 float32; do echo "model=$m dtype=$dt doc_tokens=[1024]"; done
    else
        for dt in bfloat16 float16 float32; do echo "model=$m dtype=$dt doc_tokens=[20000]"; done
    fi
}

start() {  # NAME WORKERS_PER_GPU
    source scripts/gpu_env.sh || exit 1
    if [ ! -d "$RUN" ]; then  # the tree once, and the installed wheels through a link: RUN/.gpu is .gpu
        mkdir -p "$RUN" && tar --exclude=./.gpu --exclude=./wheelhouse -cf - . | tar -xf - -C "$RUN"
        ln -s .. "$RUN/.gpu"
    fi
    [ "$1" = qwen ] && { python3 -m kvbench.model_files qwen2_5_0_5b || exit 1; }
    mkdir -p "$RUN/logs" && queue "$1" > "$RUN/queue-$1.txt"
    cat > "$RUN/worker.sh" <<'WORKER'
set -f  # the overrides hold brackets: no globbing
gpu=$((SLOT % NGPU)); name=$(printf %s "$1" | tr -c 'A-Za-z0-9=._' _)
echo "$(date +%T) gpu$gpu start $1" >> logs/queue.log
CUDA_VISIBLE_DEVICES=$gpu python3 -m kvbench +exp=exactness $1 > "logs/$name.log" 2>&1
echo "$(date +%T) gpu$gpu end rc=$? $1" >> logs/queue.log
WORKER
    cd "$RUN" && export OMP_NUM_THREADS=2 NGPU
    # xargs gives each worker a slot number; slot mod NGPU is its GPU.
    setsid nohup xargs -P $(($2 * NGPU)) --process-slot-var=SLOT -d '\n' -n 1 bash worker.sh \
        < "queue-$1.txt" > "logs/xargs-$1.log" 2>&1 &
    echo $! > "logs/xargs-$1.pid"  # setsid and nohup exec: this is xargs
    echo "started $1: $(wc -l < "queue-$1.txt") points, $2 workers per GPU on $NGPU GPUs"
}

collect() {  # [WAIT_S]
    local until=$((SECONDS + ${1:-0}))
    cd "$RUN" || { echo "no queue has started"; return 1; }
    running() { local pid; for pid in $(cat logs/xargs-*.pid); do kill -0 "$pid" 2> /dev/null && return; done; false; }
    while [ "$SECONDS" -lt "$until" ] && running; do sleep 5; done
    nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
    echo "kvbench processes: $(pgrep -fc "kvbench \+exp=exactness")"
    cat logs/queue.log
    tar czf "$OUT/exactness-queue.tgz" results/exactness logs
}

case "${1:-}" in
    start) start "$2" "$3" ;;
    collect) collect "${2:-0}" ;;
    *) echo "usage: $0 start smollm2|qwen WORKERS_PER_GPU | collect [WAIT_S]" >&2; exit 2 ;;
esac
