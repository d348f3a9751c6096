"""Device calibration: the ceilings every timing is held against, measured on the device at hand.

Three numbers per device: the dense matmul rate in the run's dtype, the device-memory
bandwidth (a large copy, bytes read plus bytes written), and the pinned host-to-device
bandwidth (CUDA only). Each is the best of several CUDA-event-timed repeats after warmup:
a ceiling, so the floors built on it are as low as the hardware allows. Inputs are random
(never zeros, which run faster). Results are cached on disk, keyed by device name, driver,
torch version and dtype, so a sweep measures them once.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from kvbench.measure.timing import gbps, time_ms
from kvbench.rows.atomic import atomic_write

CACHE_FILE = Path(os.environ.get("KVBENCH_CACHE", "~/.cache/kvbench")).expanduser() / "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """Measured ceilings of one device for one dtype."""

    key: str
    matmul_tflops: float  # dense (n x n) @ (n x n) in the dtype, 1e12 FLOP/s
    hbm_gbps: float  # device-memory copy, (read + written bytes) / time, 1e9 B/s
    h2d_gbps: float | None  # pinned host-to-device copy, 1e9 B/s; None off CUDA


def _device_key(device: torch.device, dtype: torch.dtype) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        driver = torch.cuda.driver_version() if hasattr(torch.cuda, "driver_version") else ""
        name = f"{props.name}|cc{props.major}.{props.minor}|driver{driver}|cuda{torch.version.cuda}"
    else:
        name = f"cpu|{os.cpu_count()}cores|threads{torch.get_num_threads()}"
    return f"{name}|torch{torch.__version__}|{str(dtype).removeprefix('torch.')}"


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int | None = None, repeats: int = 10) -> float:
    """Best rate of an ``(n, n) @ (n, n)`` product on random data, TFLOP/s."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    samples = time_ms(lambda: torch.matmul(a, b), device, warmup=3, repeats=repeats)
    return 2 * n**3 / (samples.min() * 1e-3) / 1e12


def copy_gbps(device: torch.device, nbytes: int | None = None, repeats: int = 10) -> float:
    """Best device-memory copy rate counting bytes read and written, GB/s."""
    nbytes = nbytes or ((2 << 30) if device.type == "cuda" else (256 << 20))
    src = torch.randint(0, 255, (nbytes,), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    samples = time_ms(lambda: dst.copy_(src), device, warmup=2, repeats=repeats)
    return 2 * nbytes / (samples.min() * 1e-3) / 1e9


@functools.cache
def h2d_gbps(device: torch.device, nbytes: int = 256 << 20, repeats: int = 5) -> float | None:
    """Best pinned host-to-device copy rate, GB/s; None off CUDA."""
    if device.type != "cuda":
        return None
    src = torch.randint(0, 255, (nbytes,), dtype=torch.uint8).pin_memory()
    dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
    samples = time_ms(lambda: dst.copy_(src, non_blocking=True), device, warmup=1, repeats=repeats)
    return gbps(nbytes, samples.min())


def _load_cache() -> dict:
    try:
        return json.loads(CACHE_FILE.read_text())
    except (OSError, ValueError):
        return {}  # missing or unreadable: measure again and rewrite it


@functools.cache
def calibrate(device: torch.device, dtype: torch.dtype) -> Calibration:
    """The device's ceilings for ``dtype``, from the on-disk cache or measured now (seconds)."""
    device = torch.device(device)
    key = _device_key(device, dtype)
    cached = _load_cache()
    if key in cached:
        return Calibration(**cached[key])
    cal = Calibration(
        key=key, matmul_tflops=matmul_tflops(device, dtype), hbm_gbps=copy_gbps(device), h2d_gbps=h2d_gbps(device)
    )
    cached[key] = asdict(cal)
    CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(CACHE_FILE, json.dumps(cached, indent=2).encode())
    return cal


@functools.cache
def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (1 elsewhere)."""
    device = torch.device(device)
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1
