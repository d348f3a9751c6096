#!/usr/bin/env python3
"""Standalone LMCache storage-backend benchmark (no vLLM / SGLang).

Written against lmcache==0.5.3 (cp312 wheel, built against torch==2.11.0, links
libcudart.so.13). APIs used, all verified in that wheel's source:

  lmcache/v1/config.py           LMCacheEngineConfig.from_defaults(**kw)   (config_base.py:350)
                                 keys: chunk_size, local_cpu, max_local_cpu_size, local_disk,
                                 max_local_disk_size, remote_url, remote_serde, save_unfull_chunk,
                                 extra_config  (config.py:88-120, 378-389)
  lmcache/v1/metadata.py:20      LMCacheMetadata(model_name, world_size, local_world_size,
                                 worker_id, local_worker_id, kv_dtype, kv_shape, chunk_size=...)
  lmcache/v1/gpu_connector/gpu_connectors.py:146
                                 VLLMPagedMemGPUConnectorV2(hidden_dim_size, num_layers)
                                 kvcaches = list[L] of [2, num_blocks, block_size, H, D] (vLLM flash-attn)
  lmcache/v1/cache_engine.py:2093 LMCacheEngineBuilder.get_or_create(id, cfg, meta, connector,
                                 broadcast_fn, broadcast_object_fn); engine.post_init() (:301)
                                 creates StorageManager -> CreateStorageBackends
                                 (storage_backend/__init__.py:111).
  engine.store(tokens, kvcaches=..., slot_mapping=...)      cache_engine.py:388
  engine.lookup(tokens) -> int (#prefix tokens present)      cache_engine.py:1130
  engine.retrieve(tokens, kvcaches=..., slot_mapping=...) -> bool mask (CPU)   cache_engine.py:780
  LMCacheEngineBuilder.destroy(id)                           cache_engine.py:2152
  mock_up_broadcast_fn / mock_up_broadcast_object_fn         lmcache/utils.py:777,781

Backends (one engine per backend, so tiers do not mix):
  cpu   : local_cpu=True  (LocalCPUBackend hot cache in pinned host memory)
  disk  : local_cpu=False + local_disk=PATH (LocalDiskBackend; LocalCPUBackend is only the
          staging allocator; with local_cpu=False nothing is promoted to CPU on read:
          local_cpu_backend.py:202). Page cache is NOT bypassed unless --odirect
          (extra_config use_odirect, local_disk_backend.py:151-154).
  redis : local_cpu=False + remote_url=redis://HOST:PORT, remote_serde=naive
          (RemoteBackend + RedisConnector, redis.asyncio; connector/redis_connector.py:238)

Node setup (carry wheels/ = 17 MiB; redis/hiredis may already be carried by kvbench):
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site wheels/*.whl
  export PYTHONPATH=/tmp/site
  python3 lmcache_bench.py --tokens 4096,32768 --backends cpu,disk,redis \
      --redis-url redis://127.0.0.1:6379 --disk-path /tmp/lmc_disk/ --verify
Dry run without GPU (contig connector, torch fallback ops): --device cpu --layers 4 --tokens 1000

Output: one JSON line per (backend, tokens): bytes, store_ms, retrieve_ms (median of --iters
after --warmup, torch.cuda.synchronize + perf_counter around engine.retrieve), GBps
(bytes / median, 1e9), native_ops (True = compiled lmcache.c_ops bound, False = torch fallback).
"""

# Standard
import argparse
import json
import os
import shutil
import statistics
import sys
import time
import types
import uuid
import zlib

# LMCache phones home on engine init unless told not to (usage_telemetry/identity.py:38-40);
# the GPU node has no network.
os.environ.setdefault("LMCACHE_TRACK_USAGE", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("LMCACHE_LOG_LEVEL", "WARNING")
os.environ.setdefault("PYTHONHASHSEED", "0")


def _ensure_numba():
    """lmcache/v1/platform/torch_ops.py imports `from numba import njit` at module top.
    If numba is missing/broken, install an identity-decorator stand-in (only the cachegen
    codec and token hasher use njit; neither is on this benchmark's path)."""
    try:
        import numba  # noqa: F401

        return "numba"
    except Exception:
        stub = types.ModuleType("numba")

        def njit(*a, **k):
            if len(a) == 1 and callable(a[0]) and not k:
                return a[0]
            return lambda f: f

        stub.njit = njit
        stub.jit = njit
        stub.prange = range
        sys.modules["numba"] = stub
        return "stub"


NUMBA = _ensure_numba()

# Third Party
import torch  # noqa: E402

# First Party (LMCache)
import lmcache  # noqa: E402
from lmcache.utils import mock_up_broadcast_fn, mock_up_broadcast_object_fn  # noqa: E402
from lmcache.v1.cache_engine import LMCacheEngineBuilder  # noqa: E402
from lmcache.v1.config import LMCacheEngineConfig  # noqa: E402
from lmcache.v1.gpu_connector.gpu_connectors import (  # noqa: E402
    GPUConnectorInterface,
    VLLMPagedMemGPUConnectorV2,
)
from lmcache.v1.metadata import LMCacheMetadata  # noqa: E402

GiB = 1024**3


def native_ops_loaded():
    """True if the compiled lmcache.c_ops extension was bound over the torch fallback.
    bind_native() (v1/platform/base/device_ops.py:70) sets instance attributes, so a
    native op shows up in vars(ops); the torch baseline is a class method."""
    try:
        from lmcache.v1.platform import resolve_device_ops, torch_device_type

        ops = resolve_device_ops(torch_device_type)
        return "multi_layer_kv_transfer" in vars(ops)
    except Exception:
        return None


class ContigKVConnector(GPUConnectorInterface):
    """Non-paged connector (our own code, not LMCache's): KV lives in one tensor
    kv[2, L, T, D] and each LMCache chunk MemoryObj (KV_2LTD: [2, L, t, D]) is copied
    with a plain .copy_().  Used for --connector contig and for the CPU dry run."""

    def __init__(self, num_layers, hidden_dim):
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.kvcaches = None
        self.load_stream = torch.cuda.Stream() if torch.cuda.is_available() else None

    def get_shape(self, num_tokens):
        return torch.Size([2, self.num_layers, num_tokens, self.hidden_dim])

    def from_gpu(self, memory_obj, start, end, **kwargs):
        kv = kwargs["kvcaches"]
        memory_obj.tensor.copy_(kv[:, :, start:end], non_blocking=False)

    def to_gpu(self, memory_obj, start, end, **kwargs):
        kv = kwargs["kvcaches"]
        kv[:, :, start:end].copy_(memory_obj.tensor, non_blocking=True)

    def batched_from_gpu(self, memory_objs, starts, ends, **kwargs):
        for m, s, e in zip(memory_objs, starts, ends):
            self.from_gpu(m, s, e, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.current_stream().synchronize()

    def batched_to_gpu(self, memory_objs, starts, ends, **kwargs):
        if self.load_stream is None:
            for m, s, e in zip(memory_objs, starts, ends):
                self.to_gpu(m, s, e, **kwargs)
            return
        with torch.cuda.stream(self.load_stream):
            for m, s, e in zip(memory_objs, starts, ends):
                self.to_gpu(m, s, e, **kwargs)
        self.load_stream.synchronize()


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def make_config(backend, args, kv_bytes):
    # Staging / hot-cache pinned pool: whole document is allocated at once on store
    # (cache_engine.py:484-510), plus headroom.
    cpu_gb = max(args.cpu_pool_gb, 1.25 * kv_bytes / GiB + 0.5)
    common = dict(
        chunk_size=args.chunk_size,
        max_local_cpu_size=cpu_gb,
        save_unfull_chunk=True,
        remote_serde="naive",
        extra_config={},
    )
    if backend == "cpu":
        return LMCacheEngineConfig.from_defaults(
            local_cpu=True, local_disk=None, max_local_disk_size=0.0, remote_url=None, **common
        )
    if backend == "disk":
        extra = {"use_odirect": bool(args.odirect)}
        if args.disk_io_threads:
            extra["disk_io_threads"] = args.disk_io_threads
        common["extra_config"] = extra
        return LMCacheEngineConfig.from_defaults(
            local_cpu=False,
            local_disk=args.disk_path,
            max_local_disk_size=max(args.disk_gb, 1.25 * kv_bytes / GiB + 0.5),
            remote_url=None,
            **common,
        )
    if backend == "redis":
        return LMCacheEngineConfig.from_defaults(
            local_cpu=False, local_disk=None, max_local_disk_size=0.0, remote_url=args.redis_url, **common
        )
    raise ValueError(backend)


def build_kv(args, T, dev, gen):
    """Returns (src_kv, dst_kv, slot_mapping, connector) for the chosen connector."""
    L, H, D = args.layers, args.kv_heads, args.head_dim
    if args.connector == "paged":
        bs = args.block_size
        nb = (T + bs - 1) // bs
        # vLLM flash-attn layout per layer: [2, num_blocks, block_size, H, D]
        src = [torch.randn(2, nb, bs, H, D, generator=gen, device=dev).to(torch.bfloat16) for _ in range(L)]
        dst = [torch.zeros_like(t) for t in src]
        slot = torch.arange(T, dtype=torch.long, device=dev)  # identity page table
        conn = VLLMPagedMemGPUConnectorV2(H * D, L)
    else:
        src = torch.randn(2, L, T, H * D, generator=gen, device=dev).to(torch.bfloat16)
        dst = torch.zeros_like(src)
        slot = torch.arange(T, dtype=torch.long, device=dev)
        conn = ContigKVConnector(L, H * D)
    return src, dst, slot, conn


def kv_equal(a, b, T, args):
    if isinstance(a, list):
        bs = args.block_size
        return all(torch.equal(x.flatten(1, 2)[:, :T], y.flatten(1, 2)[:, :T]) for x, y in zip(a, b))
    return torch.equal(a[:, :, :T], b[:, :, :T])


def wait_stored(engine, tokens, T, timeout_s):
    t0 = time.perf_counter()
    while True:
        n = engine.lookup(tokens)
        if n >= T:
            return time.perf_counter() - t0, n
        if time.perf_counter() - t0 > timeout_s:
            return None, n
        time.sleep(0.002)


def redis_reachable(url):
    """Ping the server first: RemoteBackend.contains() swallows connection errors and
    returns False (remote_backend.py:183-186), so a dead server would look like a slow store."""
    try:
        import redis  # redis-py, also what RedisConnector uses (redis.asyncio)

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        return None
    except Exception as e:
        return f"redis not reachable at {url}: {type(e).__name__}: {e}"


def run_one(backend, T, args, dev):
    if backend == "redis":
        err = redis_reachable(args.redis_url)
        if err:
            return dict(backend=backend, tokens=T, error=err)
    L, H, D = args.layers, args.kv_heads, args.head_dim
    kv_bytes = 2 * L * T * H * D * 2  # bf16
    gen = torch.Generator(device=dev).manual_seed(1234 + T)
    src, dst, slot, conn = build_kv(args, T, dev, gen)
    # distinct token ids per (backend, T) so no chunk is shared across runs
    tokens = torch.randint(
        0, 150000, (T,), generator=torch.Generator().manual_seed(zlib.crc32(f"{backend}-{T}".encode()))
    )

    cfg = make_config(backend, args, kv_bytes)
    meta = LMCacheMetadata(
        model_name=args.model_name,
        world_size=1,
        local_world_size=1,
        worker_id=0,
        local_worker_id=0,
        kv_dtype=torch.bfloat16,
        kv_shape=(L, 2, args.chunk_size, H, D),
        chunk_size=args.chunk_size,
    )
    iid = f"kvbench-{backend}-{T}-{uuid.uuid4().hex[:6]}"
    engine = LMCacheEngineBuilder.get_or_create(iid, cfg, meta, conn, mock_up_broadcast_fn, mock_up_broadcast_object_fn)
    engine.post_init()
    rec = dict(
        backend=backend,
        tokens=T,
        layers=L,
        kv_heads=H,
        head_dim=D,
        chunk_size=args.chunk_size,
        connector=args.connector,
        bytes=kv_bytes,
        lmcache_version=lmcache.__version__,
        torch=torch.__version__,
        numba=NUMBA,
        native_ops=native_ops_loaded(),
        odirect=bool(args.odirect) if backend == "disk" else None,
    )
    try:
        # ---- store (async for disk/redis: completion = lookup sees all tokens)
        sync(dev)
        t0 = time.perf_counter()
        engine.store(tokens, kvcaches=src, slot_mapping=slot)
        t_call = time.perf_counter() - t0
        t_wait, n = wait_stored(engine, tokens, T, args.store_timeout)
        rec["store_call_ms"] = t_call * 1e3
        rec["store_ms"] = None if t_wait is None else (t_call + t_wait) * 1e3
        rec["stored_tokens"] = n
        if n < T:
            rec["error"] = f"only {n}/{T} tokens stored (pool too small or backend failed)"
            return rec
        if backend == "disk" and args.drop_caches:
            os.system("sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null")

        # ---- retrieve to GPU
        times, bad = [], 0
        for i in range(args.warmup + args.iters):
            if args.zero_dst:
                for d in dst if isinstance(dst, list) else [dst]:
                    d.zero_()
            if backend == "disk" and args.drop_caches and i > 0:
                os.system("echo 3 > /proc/sys/vm/drop_caches 2>/dev/null")
            sync(dev)
            a = time.perf_counter()
            mask = engine.retrieve(tokens, kvcaches=dst, slot_mapping=slot)
            sync(dev)
            b = time.perf_counter()
            got = int(mask.sum().item())
            if got != T:
                bad += 1
            if i >= args.warmup:
                times.append((b - a) * 1e3)
        rec["retrieved_tokens_last"] = got
        rec["partial_retrieves"] = bad
        if args.verify:
            rec["verified"] = bool(kv_equal(src, dst, T, args))
        med = statistics.median(times)
        rec.update(
            retrieve_ms=med, retrieve_ms_min=min(times), retrieve_ms_all=times, GBps=kv_bytes / (med / 1e3) / 1e9
        )
        return rec
    finally:
        # LMCache 0.5.3 bug: RedisConnector.close() (redis_connector.py:391) awaits
        # pq_executor.shutdown(), a *sync* call that blocks the event-loop thread on a
        # future scheduled on that same loop -> destroy() never returns for remote_url.
        # Run destroy in a daemon thread with a timeout; main() ends with os._exit().
        import threading

        th = threading.Thread(target=LMCacheEngineBuilder.destroy, args=(iid,), daemon=True)
        th.start()
        th.join(timeout=args.destroy_timeout)
        if th.is_alive():
            rec["destroy_hung"] = True
        del src, dst
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        if backend == "disk" and not args.keep_disk:
            shutil.rmtree(args.disk_path, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=36)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--tokens", default="4096,32768", help="comma list")
    p.add_argument("--backends", default="cpu,disk,redis", help="comma list of cpu,disk,redis")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    p.add_argument("--disk-path", default="/tmp/lmcache_bench_disk/")
    p.add_argument("--odirect", action="store_true", help="LocalDiskBackend O_DIRECT reads/writes")
    p.add_argument("--drop-caches", action="store_true", help="drop page cache before disk reads (root)")
    p.add_argument("--disk-io-threads", type=int, default=0)
    p.add_argument("--keep-disk", action="store_true")
    p.add_argument("--chunk-size", type=int, default=256)
    p.add_argument("--block-size", type=int, default=16, help="paged KV block size")
    p.add_argument(
        "--connector",
        choices=["paged", "contig"],
        default="paged",
        help="paged = LMCache's VLLMPagedMemGPUConnectorV2 (c_ops kernel); contig = plain copy_",
    )
    p.add_argument("--cpu-pool-gb", type=float, default=0.0)
    p.add_argument("--disk-gb", type=float, default=0.0)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--store-timeout", type=float, default=600.0)
    p.add_argument("--destroy-timeout", type=float, default=15.0)
    p.add_argument("--verify", action="store_true")
    p.add_argument("--zero-dst", action="store_true")
    p.add_argument("--model-name", default="kvbench")
    p.add_argument("--device", default="cuda", help="cuda or cpu (cpu = dry run, contig connector only)")
    args = p.parse_args()

    dev = torch.device(args.device)
    if dev.type == "cuda" and dev.index is None:  # set_device and the paged connector want an index
        dev = torch.device("cuda", 0)
    if dev.type == "cpu":
        args.connector = "contig"
    elif not torch.cuda.is_available():
        sys.exit("CUDA not available; use --device cpu for a dry run")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)

    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        for T in [int(t) for t in args.tokens.split(",") if t.strip()]:
            try:
                rec = run_one(backend, T, args, dev)
            except Exception as e:  # keep going across backends
                rec = dict(backend=backend, tokens=T, error=f"{type(e).__name__}: {e}")
            print(json.dumps(rec), flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # non-daemon LMCache threads (storage-manager-event-loop) may be stuck; see destroy note
    os._exit(0)


if __name__ == "__main__":
    main()
