"""The runner behind ``python -m kvbench``: validate, load, enumerate points, measure each, write rows.

:func:`run` is the whole of one run (one Hydra job) once the config is composed.

Everything that can be checked before measuring is checked first (config values, device,
document lengths against the corpus and the model's context), so a broken config fails in
seconds. During the sweep a failing point becomes a row with ``status=failed|oom`` and a
reason, and the sweep goes on; a point already ``ok`` in the run folder is skipped unless
``overwrite=true``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from kvbench import __version__
from kvbench.config.schema import ConfigError, KVBenchConfig, LoggerConfig, load_settings
from kvbench.experiments import RowsExperiment, RunContext, get_experiment
from kvbench.model.corpus import Corpus
from kvbench.model.loading import LoadedModel, context_tokens, load_model, load_tokenizer
from kvbench.rows.git import tracked_files
from kvbench.rows.provenance import manifest, utc_now
from kvbench.rows.schema import make_row, one_line
from kvbench.rows.store import ResultStore, StoreWriteError, point_id
from kvbench.rows.tracking import make_tracker
from kvbench.run.console import print_summary
from kvbench.run.paths import check_tier_dir
from kvbench.run.progress import RunProgress
from kvbench.run.progress import log as progress_log

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} is invalid: allowed cpu | auto (no CUDA device is visible)")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ConfigError(f"device={name!r} is invalid: allowed cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
        device = torch.device("cuda", device.index or 0)
        torch.cuda.set_device(device)
    return device


def max_doc_tokens(settings: KVBenchConfig, corpus: Corpus, context: int) -> int:
    """Longest document whose longest question and continuation still fit the model's context."""
    return context - max(q.shape[1] for q in corpus.questions) - settings.exactness.gen_tokens


def preflight(settings: KVBenchConfig) -> tuple[torch.device, Corpus, list[int], tuple]:
    """Every check that needs no model weights.

    Returns the device, the corpus, the lengths to skip and ``load_tokenizer``'s result.
    """
    if settings.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS initialises
    # Enforced, not warn_only: a row that says deterministic=true must be; a kernel without a
    # deterministic implementation raises and fails its point with the op named in the reason.
    # Set either way, so a multirun job never inherits the previous job's mode.
    torch.use_deterministic_algorithms(settings.deterministic)
    device = resolve_device(settings.device)
    check_tier_dir(settings)
    if settings.dtype != "float32" and device.type == "cpu":
        log.warning("dtype=%s on CPU runs through slow reference kernels", settings.dtype)
    tokenizer = load_tokenizer(settings.model)
    corpus = Corpus(settings.corpus, tokenizer[0])
    for n in settings.doc_tokens:
        corpus.check_length(n)
    context = context_tokens(settings.model)
    limit = max_doc_tokens(settings, corpus, context)
    skip = [n for n in settings.doc_tokens if n > limit]
    if skip and not settings.skip_beyond_context:
        raise ConfigError(
            f"doc_tokens={skip} is invalid: allowed up to {limit} (model context {context} "
            "minus question and continuation), or set skip_beyond_context=true to record them as skipped"
        )
    return device, corpus, skip, tokenizer


_LOADED: dict[str, LoadedModel] = {}


def load_model_once(settings: KVBenchConfig, device: torch.device, tokenizer: tuple) -> LoadedModel:
    """The run's model; the jobs of one multirun process share it when model, device and dtype match
    (an 8B model takes seconds to load and its fast reader tens of seconds to compile)."""
    key = repr((settings.model, str(device), settings.dtype, settings.attn_impl, settings.seed))
    if key not in _LOADED:
        _LOADED.clear()  # one model at a time
        _LOADED[key] = load_model(
            settings.model,
            device=device,
            dtype=getattr(torch, settings.dtype),
            attn_impl=settings.attn_impl,
            seed=settings.seed,
            tokenizer=tokenizer,
        )
    return _LOADED[key]


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the configured experiment into ``run_dir``; return the rows written this run.

    ``overrides`` (the command line's, as Hydra parsed them) go into the manifest. A run whose
    points are all done already says so in one line and changes nothing in the folder.
    """
    settings = load_settings(cfg)
    experiment = get_experiment(settings.experiment)
    if isinstance(experiment, RowsExperiment):
        return run_on_rows(cfg, settings, experiment, run_dir, overrides)
    progress_log.info("loading tokenizer and corpus (%s)", settings.corpus.dataset or settings.corpus.source)
    device, corpus, skip, tokenizer = preflight(settings)
    progress_log.info("loading model %s on %s (%s)", settings.model.name, device, settings.dtype)
    lm = load_model_once(settings, device, tokenizer)
    info = dict(manifest(device), overrides=overrides or [], logger=logger_metadata(settings))
    ctx = RunContext(settings, lm, corpus, device, str(info["device_name"]), getattr(torch, settings.dtype))

    store = ResultStore(run_dir)
    done = store.done()
    points = [(p, identity_columns(ctx, experiment.name, p)) for p in experiment.points(ctx)]
    todo = [(p, ident) for p, ident in points if settings.overwrite or ident["point_id"] not in done]
    ids = {ident["point_id"] for _, ident in points}
    existing = [r for r in store.rows() if r.get("point_id") in ids]
    if not todo:
        print(all_done_line(len(points), store.run_dir, settings.logger))
        if settings.logger.log_existing:
            tracker = make_tracker(settings.logger, store.run_dir, tracked_config(cfg), name=run_name(settings, lm))
            for row in existing:
                tracker.log_row(row)
            tracker.finish(existing, run_summary([], already_done=len(existing)))
        return []

    store.write_config(measurement_config(cfg))
    store.record_job(info)  # one manifest entry per job: jobs sharing the folder keep theirs
    tracker = make_tracker(settings.logger, store.run_dir, tracked_config(cfg), name=run_name(settings, lm))
    for row in existing if settings.logger.log_existing else []:
        tracker.log_row(row)
    rows: list[dict[str, Any]] = []
    try:
        with RunProgress(len(todo), f"{settings.exp_name} {lm.name}") as bar:
            ctx.stage = bar.stage
            for point, identity in todo:
                bar.start_point(point_label(point))
                row = measure_point(ctx, experiment, point, identity, skip)
                store.append(row)
                tracker.log_row(row)
                rows.append(row)
                bar.end_point(row["status"])
    finally:
        info["end_time"] = utc_now()
        # on a full disk the manifest fails too: the first error, naming the rows file, is the one reported
        with contextlib.suppress(StoreWriteError) if sys.exc_info()[0] is StoreWriteError else contextlib.nullcontext():
            store.record_job(info)
        logged = (existing if settings.logger.log_existing else []) + rows
        tracker.finish(logged, run_summary(rows, already_done=len(points) - len(todo)))
    print_summary(store.rows(), title=f"{settings.exp_name}: {lm.name} ({lm.weights} weights) on {ctx.device_name}")
    return rows


def all_done_line(points: int, run_dir: Path, logger: LoggerConfig) -> str:
    """The one line of a run that found every point done: where, and what would change that."""
    if logger.backend == "none":
        tracked = ""
    elif logger.log_existing:
        tracked = f"; their rows are logged to {logger.backend}"
    else:
        tracked = f"; nothing logged to {logger.backend} (logger.log_existing=true logs their rows)"
    done = f"kvbench: all {points} points are already done in {run_dir}"
    return f"{done}: nothing measured (overwrite=true re-measures){tracked}"


def point_label(point: dict[str, Any]) -> str:
    """A point's coordinates as the progress display names them, e.g. ``L=256 reader=fast``."""
    return " ".join(f"{'L' if k == 'doc_tokens' else k}={v}" for k, v in point.items())


def measurement_config(cfg: DictConfig) -> str:
    """config.yaml: what the rows were measured with. The logger is not a measurement setting:
    it goes into the manifest as run metadata, so a later run with W&B on never rewrites it."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)  # a DictConfig converts to a dict
    plain.pop("logger", None)
    return OmegaConf.to_yaml(OmegaConf.create(plain))


def logger_metadata(settings: KVBenchConfig) -> dict[str, Any]:
    """The tracker a job logged to (backend, project, mode), for its manifest entry."""
    lg = settings.logger
    return {"backend": lg.backend, "project": lg.project, "entity": lg.entity, "mode": lg.mode}


def tracked_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as the tracker records it (``wandb.init(config=...)``)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def run_name(settings: KVBenchConfig, lm: LoadedModel) -> str:
    return f"{settings.exp_name}-{lm.name}"


def run_summary(rows: list[dict[str, Any]], already_done: int) -> dict[str, int]:
    """The tracker's summary: what this run measured, and what it found done before it."""
    return {
        "measured": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        "failed": sum(r["status"] in ("failed", "oom") for r in rows),
        "already_done": already_done,
    }


def run_on_rows(
    cfg: DictConfig,
    settings: KVBenchConfig,
    experiment: RowsExperiment,
    run_dir: str | Path,
    overrides: list[str] | None,
) -> list[dict[str, Any]]:
    """An experiment that derives rows from committed rows (a ``RowsExperiment``, e.g.
    economics): no device or model; the same run folder, config, manifest and rows file.
    Its rows replace the folder's earlier ones (they are recomputed whole, not resumed), so a
    folder holding files git tracks (the committed economics) is replaced only with
    ``write_tracked=true``; without it the run stops before writing or logging anything."""
    tracked = tracked_files(run_dir)
    if tracked and not settings.write_tracked:
        raise ConfigError(
            f"write_tracked=false is invalid: allowed true to replace the committed rows in {run_dir} "
            f"({len(tracked)} files tracked by git); a local run writes elsewhere (exp_name=NAME)"
        )
    store = ResultStore(run_dir)
    store.write_config(measurement_config(cfg))
    info = dict(manifest(torch.device("cpu")), overrides=overrides or [])
    store.record_job(info)
    rows = experiment.derive(settings)
    store.rows_path.unlink(missing_ok=True)
    for row in rows:
        store.append(row)
    info["end_time"] = utc_now()
    store.record_job(info)
    experiment.report(rows)
    return rows


def identity_columns(ctx: RunContext, experiment: str, point: dict[str, Any]) -> dict[str, Any]:
    coords = dict(
        experiment=experiment,
        model=ctx.lm.name,
        weights=ctx.lm.weights,
        model_fingerprint=ctx.lm.fingerprint,
        dtype=ctx.settings.dtype,
        device=ctx.device_name,
        attn_impl=ctx.settings.attn_impl,
        deterministic=ctx.settings.deterministic,
        **point,
    )
    return dict(
        coords, point_id=point_id(coords), tokenizer=ctx.lm.tokenizer_name, model_file_sha256=ctx.lm.file_sha256
    )


def out_of_memory(exc: BaseException) -> bool:
    """A GPU (``torch.OutOfMemoryError``) or host allocation failed: PyTorch's CPU allocator raises a
    plain ``RuntimeError`` saying so, Python a ``MemoryError``."""
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in str(exc)


def measure_point(
    ctx: RunContext, experiment, point: dict[str, Any], identity: dict[str, Any], skip: list[int]
) -> dict[str, Any]:
    """One row: measured fields with status ok, or the status and reason it could not be."""
    start = time.perf_counter()
    if point["doc_tokens"] in skip:
        fields = dict(
            status="skipped",
            reason=f"doc_tokens={point['doc_tokens']} plus question and "
            f"continuation exceeds the model context {ctx.lm.context_tokens}",
        )
    else:
        try:
            fields = experiment.run_point(ctx, point)
        except Exception as exc:
            if out_of_memory(exc):
                fields = dict(status="oom", reason=one_line(exc))
            else:
                log.exception("point %s failed:", point)  # the traceback as exc_text: the log filter shortens its paths
                fields = dict(status="failed", reason=one_line(exc))
        finally:
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()
    return make_row(
        **{**identity, **fields},
        kvbench_version=__version__,
        elapsed_s=round(time.perf_counter() - start, 3),
        timestamp=utc_now(),
    )
