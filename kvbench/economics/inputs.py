"""Measured inputs of the cost model, read from rows of any vintage.

Rows are selected by their ``experiment`` and identity columns, never by folder name.
Two generations of reuse rows exist: the first (no ``reader`` column) holds HF eager reuse
in ``reuse_ms`` and the CUDA-graph reader in ``reuse_graph_ms``; later rows name their
``reader`` (``hf``, ``graph``, ``fast``) and divide by ``prefill_best_ms``. Both become one
long table: a row per (model, weights, dtype, device, length, reader).
"""

from __future__ import annotations

import math

import pandas as pd

from kvbench.economics.crossover import best_prefill_ms, tier_io

IDENTITY = ["model", "weights", "dtype", "device", "doc_tokens"]
# A batched reader stands in for a single request only with a question of the same length.
BATCH_IDENTITY = [*IDENTITY, "query_tokens"]
READER_PREFERENCE = ("fast", "graph", "hf")  # the headline reader is the first one present


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-missing when this vintage of rows has none."""
    return df[name] if name in df else pd.Series(float("nan"), index=df.index)


def ok_rows(rows: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """Rows of one experiment that measured something (status ok), deterministic controls left out."""
    if rows.empty or "experiment" not in rows:
        return rows.iloc[0:0]
    keep = (rows["experiment"] == experiment) & (rows["status"] == "ok")
    if "deterministic" in rows:
        keep &= ~rows["deterministic"].fillna(False).astype(bool)
    return rows[keep].copy()


def prefill_ms(rows: pd.DataFrame) -> pd.Series:
    """The prefill every speedup divides: ``prefill_best_ms`` where rows have it, else the
    faster of eager and CUDA-graph prefill (:func:`kvbench.economics.crossover.best_prefill_ms`)."""
    older = rows.apply(lambda r: best_prefill_ms(r.to_dict()), axis=1) if len(rows) else pd.Series(dtype=float)
    return _col(rows, "prefill_best_ms").fillna(older)


def reuse_points(rows: pd.DataFrame) -> pd.DataFrame:
    """Reuse rows as one row per reader: IDENTITY + reader, prefill_ms (best), reuse_ms, kv_bytes, speedup.

    Rows without ``reader`` give an ``hf`` point (``reuse_ms``) and, where it ran, a
    ``graph`` point (``reuse_graph_ms``). A point measured by several runs gives one row: the
    run's that covers most lengths of its model, then the latest.
    """
    ok = ok_rows(rows, "reuse")
    if ok.empty:
        return pd.DataFrame(columns=[*IDENTITY, "reader", "prefill_ms", "reuse_ms", "kv_bytes", "speedup"])
    ok["prefill_best"] = prefill_ms(ok)
    ok["reader"] = _col(ok, "reader")
    named = ok[ok["reader"].notna() & _col(ok, "reuse_ms").notna()]  # untimed exactness rows: no point
    old = ok[_col(ok, "reader").isna()]
    parts = [named.assign(reuse=named["reuse_ms"])]
    # The first vintage's speedup CI belongs to its eager reader only: not carried to either point.
    old = old.assign(speedup_ci_low=float("nan"), speedup_ci_high=float("nan"))
    parts.append(old.assign(reader="hf", reuse=old["reuse_ms"]))
    graph = old[_col(old, "reuse_graph_ms").notna()]
    parts.append(graph.assign(reader="graph", reuse=_col(graph, "reuse_graph_ms")))
    out = pd.concat(parts, ignore_index=True)
    out = out.drop(columns=["prefill_ms", "reuse_ms"]).rename(
        columns={"prefill_best": "prefill_ms", "reuse": "reuse_ms"}
    )
    out["speedup"] = out["prefill_ms"] / out["reuse_ms"]
    # A point measured again by another run (a launcher's demonstration sweep, say) counts once:
    # the run that covers most lengths of the model wins (one coherent curve), then the latest.
    run = _col(out, "run_dir").fillna("").astype(str)
    out["_lengths"] = out.groupby([run, *IDENTITY[:-1]], dropna=False)["doc_tokens"].transform("nunique")
    out["_when"] = _col(out, "timestamp")
    out = out.sort_values(["_lengths", "_when"], na_position="first", kind="stable")
    out = out.drop_duplicates([*IDENTITY, "reader"], keep="last").drop(columns=["_lengths", "_when"])
    return out.sort_values([*IDENTITY, "reader"]).reset_index(drop=True)


def exactness_points(rows: pd.DataFrame) -> pd.DataFrame:
    """Reuse rows that judged exactness, one per (model, weights, dtype, device, reader, one-pass
    reference kernel, length): where several runs judged a point, the one over the most
    documents wins (the narrowest interval), then the latest. Points judged over fewer
    documents than the model's most are left out: they come from another experiment (a sweep's
    check over 8 documents beside a matrix over 32), with intervals twice as wide.

    ``reference_attn_impl`` is filled in for rows from before the kernel-choice control, whose
    one-pass reference ran on the model's own kernel (``attn_impl``); ``reader`` likewise
    (``hf``: the first vintage had no other). ``kernel_control``: the one-pass reference ran on
    another attention kernel than the model's (the control that shows how much of a mismatch
    is kernel choice).
    """
    ok = ok_rows(rows, "reuse")
    ok = ok[_col(ok, "exact_fraction").notna()].copy()
    ok["reader"] = _col(ok, "reader").fillna("hf")
    ok["reference_attn_impl"] = _col(ok, "reference_attn_impl").fillna(_col(ok, "attn_impl"))
    ok["kernel_control"] = (
        ok["reference_attn_impl"].notna()
        & _col(ok, "attn_impl").notna()
        & (ok["reference_attn_impl"] != _col(ok, "attn_impl"))
    )
    key = [*IDENTITY[:-1], "reader", "reference_attn_impl", "doc_tokens"]
    ok = ok.assign(_docs=_col(ok, "num_docs"), _when=_col(ok, "timestamp"))
    ok = ok.sort_values(["_docs", "_when"], na_position="first", kind="stable")
    ok = ok.drop_duplicates(key, keep="last").drop(columns=["_when"])
    ok = ok[ok["_docs"] >= ok.groupby(IDENTITY[:-1], dropna=False)["_docs"].transform("max")].drop(columns="_docs")
    return ok.sort_values(key).reset_index(drop=True)


def headline(points: pd.DataFrame) -> pd.DataFrame:
    """One point per (model, weights, dtype, device, length): the best reader the rows have
    (``fast``, else ``graph``, else ``hf``)."""
    if points.empty:
        return points
    rank = points["reader"].map({r: i for i, r in enumerate(READER_PREFERENCE)}).fillna(len(READER_PREFERENCE))
    best = points.assign(_rank=rank).sort_values("_rank").drop_duplicates(IDENTITY)
    return best.drop(columns="_rank").sort_values(IDENTITY).reset_index(drop=True)


def loader_points(rows: pd.DataFrame) -> pd.DataFrame:
    """Tier rows with their prefill, the time that is not moving bytes, the bytes moved and the loader.

    ``tier_io`` is ``stream`` or ``serial`` for the stored tiers (``serial`` where a row predates
    the streaming loader) and empty for gpu and host. ``compute_ms`` = what is left of reuse
    when the load is taken out: ``reuse_ms - load_ms`` for a streaming read (whose fetch, verify
    and copy overlap inside ``load_ms``), ``reuse_ms - fetch_ms - h2d_ms`` for a serial one.
    ``shipped_bytes`` = what the tier holds for the document (``stored_bytes``, else ``kv_bytes``).
    """
    ok = ok_rows(rows, "tiers")
    if ok.empty:
        return ok
    ok["prefill_ms"] = prefill_ms(ok)
    ok["speedup"] = ok["prefill_ms"] / ok["reuse_ms"]
    serial = ok["reuse_ms"] - ok["fetch_ms"].fillna(0) - ok["h2d_ms"].fillna(0)
    ok["compute_ms"] = (ok["reuse_ms"] - _col(ok, "load_ms")).fillna(serial)
    ok["shipped_bytes"] = _col(ok, "stored_bytes").fillna(ok["kv_bytes"])
    ok["tier_variant"] = _col(ok, "tier_variant").fillna("")
    ok["codec"] = _col(ok, "codec").fillna("identity")
    ok["reader"] = _col(ok, "reader").fillna(_col(ok, "tier_query")).fillna("")
    ok["tier_io"] = [io if isinstance(io := tier_io(r), str) else "" for r in ok.to_dict("records")]
    return ok.reset_index(drop=True)


def tier_points(rows: pd.DataFrame) -> pd.DataFrame:
    """The headline tier rows (:func:`loader_points`): for each tier, variant and codec, the
    streaming loader's rows where it ran at all, the serial loader's only where they are all
    there is (a codec not re-measured since streaming)."""
    points = loader_points(rows)
    if points.empty:
        return points
    group = [c for c in ("model", "weights", "dtype", "device", "tier", "tier_variant", "codec") if c in points]
    streamed = points.groupby(group, dropna=False)["tier_io"].transform(lambda io: (io == "stream").any())
    keep = ~(streamed & (points["tier_io"] == "serial"))
    return points[keep].reset_index(drop=True)


def batched_points(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (model, weights, dtype, device, length, question tokens): the cheapest per-reader
    time of any shared-document batch (``+exp=throughput``), with its batch size and method."""
    ok = ok_rows(rows, "throughput")
    if ok.empty or "per_reader_ms" not in ok:
        return pd.DataFrame(columns=[*BATCH_IDENTITY, "batch", "method", "per_reader_ms"])
    ok = ok[ok["per_reader_ms"].notna()]
    best = ok.sort_values("per_reader_ms").drop_duplicates(BATCH_IDENTITY)
    return best.sort_values(BATCH_IDENTITY).reset_index(drop=True)


def best_codecs(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (model, weights, dtype): the best lossless and the best lossy codec by their median
    ratio over measured lengths. Columns lossless_codec, lossless_ratio, lossy_codec, lossy_ratio."""
    keys = ["model", "weights", "dtype"]
    ok = ok_rows(rows, "compress")
    if ok.empty or "compress_ratio" not in ok:
        return pd.DataFrame(columns=[*keys, "lossless_codec", "lossless_ratio", "lossy_codec", "lossy_ratio"])
    ok = ok[ok["compress_ratio"].notna()]
    ok["lossless"] = ok["codec_lossless"].fillna(False).astype(bool)
    ok["weights"] = _col(ok, "weights").fillna("real")
    med = ok.groupby([*keys, "lossless", "codec"])["compress_ratio"].median().reset_index()
    best = med.sort_values("compress_ratio", ascending=False).drop_duplicates([*keys, "lossless"])
    parts = []
    for lossless, prefix in ((True, "lossless"), (False, "lossy")):
        part = best[best["lossless"] == lossless][[*keys, "codec", "compress_ratio"]]
        parts.append(part.rename(columns={"codec": f"{prefix}_codec", "compress_ratio": f"{prefix}_ratio"}))
    return parts[0].merge(parts[1], on=keys, how="outer").reset_index(drop=True)


def context_ratio(rows: pd.DataFrame) -> pd.Series:
    """Per compress row: the lossless ratio its KV's better context entropy allows, 16 bits over
    the lower of the previous-token and previous-layer conditional entropies (bits a value). Both
    are measured on 16-bit KV only; all-missing where a row (or a vintage of rows) has none."""
    bits = pd.concat([_col(rows, "entropy_prev_token_bits"), _col(rows, "entropy_prev_layer_bits")], axis=1)
    return 16 / bits.min(axis=1)


def codecs_for(codecs: pd.DataFrame, model: str, dtype: str) -> pd.Series | None:
    """The codec ratios a point of ``model`` in ``dtype`` is priced with: its own KV's where its
    weights are real; else the most compressible real-weight KV of that dtype, since a
    random-weight KV's compressibility says nothing (None where no real KV was measured)."""
    same = codecs[codecs["dtype"] == dtype]
    real = same[same["weights"] == "real"]
    own = real[real["model"] == model]
    pick = own if len(own) else real.sort_values("lossless_ratio", ascending=False)
    return pick.iloc[0] if len(pick) else None


def nearest_length(lengths, target: int) -> int | None:
    """The measured length closest to ``target`` on a log scale (None when there is none)."""
    lengths = [int(n) for n in lengths]
    return min(lengths, key=lambda n: abs(math.log(n / target))) if lengths else None
