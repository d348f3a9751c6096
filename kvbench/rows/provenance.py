"""Provenance for the manifest: code version, libraries, device, host. Short on purpose."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import UTC, datetime

import torch

import kvbench
from kvbench.rows.git import git


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def git_state() -> dict[str, object]:
    """Commit sha and dirty flag. ``KVBENCH_GIT_SHA``/``KVBENCH_GIT_DIRTY`` win when set: a copy
    of the tree sent to a GPU node may carry no ``.git``, or a stale one that names the wrong commit."""
    if "KVBENCH_GIT_SHA" in os.environ:
        return {"git_sha": os.environ["KVBENCH_GIT_SHA"], "git_dirty": os.environ.get("KVBENCH_GIT_DIRTY", "unknown")}
    sha = git("rev-parse", "HEAD")
    if sha is not None:
        return {"git_sha": sha, "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    return {"git_sha": "unknown", "git_dirty": "unknown"}


# Asked of nvidia-smi beside the driver: a card held below its rated power or clock computes
# slower, so two runs' calibrated peaks can differ on the same model of GPU.
_SMI_NUMBERS = {
    "power_limit_w": "power.limit",
    "power_max_limit_w": "power.max_limit",
    "max_sm_clock_mhz": "clocks.max.sm",
}


def _smi_number(value: str) -> float | None:
    """``"700.00 W"`` -> 700.0; ``"[N/A]"`` or anything else unreadable -> None."""
    try:
        return float(value.split()[0])
    except (IndexError, ValueError):
        return None


def nvidia_smi_info(gpu: str | None = None) -> dict[str, object]:
    """Driver, power limits and maximum SM clock of ``gpu`` (nvidia-smi's ``--id``: index or UUID;
    None: the first GPU it lists). Each is None where nvidia-smi can't say."""
    info: dict[str, object] = dict.fromkeys(["driver", *_SMI_NUMBERS])
    query = ",".join(["driver_version", *_SMI_NUMBERS.values()])
    try:
        out = subprocess.run(
            ["nvidia-smi", *([f"--id={gpu}"] if gpu else []), f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return info
    values = [v.strip() for v in out.splitlines()[0].split(",")] if out.strip() else []
    if len(values) == len(info):
        info = {"driver": values[0], **{key: _smi_number(v) for key, v in zip(_SMI_NUMBERS, values[1:], strict=True)}}
    return info


def device_info(device: torch.device) -> dict[str, object]:
    """Name of the compute device, and for CUDA the driver, runtime, memory, power limit and SM clock."""
    if device.type != "cuda":
        return {"device_name": "cpu"}
    props = torch.cuda.get_device_properties(device)
    # nvidia-smi ignores CUDA_VISIBLE_DEVICES, so name the card by its UUID (NVML's form: "GPU-...")
    card = "GPU-" + str(props.uuid).removeprefix("GPU-") if getattr(props, "uuid", None) else None
    return {
        "device_name": props.name,
        "cuda_runtime": torch.version.cuda,
        **nvidia_smi_info(card),
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "compute_capability": f"{props.major}.{props.minor}",
    }


def placement(device: torch.device) -> dict[str, object]:
    """Where this job ran: host, process, the GPUs it was given and the physical GPU it used.

    ``gpu_index`` is the device's index on the host: a launcher that pins one GPU per job
    (SLURM, Ray, :mod:`kvbench.run.gpu_slot`) sets ``CUDA_VISIBLE_DEVICES``, and cuda:0 is then
    the GPU named there. ``scheduler_job`` is SLURM's job id (array task included) where set.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpu_index = None
    if device.type == "cuda":
        index = device.index or 0
        names = [v.strip() for v in visible.split(",")] if visible else []
        gpu_index = names[index] if index < len(names) else str(index)
    slurm = os.environ.get("SLURM_JOB_ID")
    if slurm and os.environ.get("SLURM_ARRAY_TASK_ID"):
        slurm = f"{os.environ.get('SLURM_ARRAY_JOB_ID', slurm)}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "cuda_visible_devices": visible,
        "gpu_index": gpu_index,
        "scheduler_job": slurm,
    }


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def manifest(device: torch.device) -> dict[str, object]:
    """Everything a reader needs to trust and reproduce a run, minus the config (saved beside it)."""
    import transformers

    return {
        **git_state(),
        "kvbench": kvbench.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        **device_info(device),
        **placement(device),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "ram_gib": _ram_gib(),
        "host_os": platform.platform(),
        "start_time": utc_now(),
        "end_time": None,
    }
