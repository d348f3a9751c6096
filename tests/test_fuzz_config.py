"""Fuzzing the command line (#23, item 8): any mix of hostile values for the config's keys ends in one
``kvbench: config error:`` line, exit code 2 and no folder, or in a normal run.

The real entry point runs in this process (``runpy``, as ``python -m kvbench`` would), so an
example costs a fraction of a second when it fails and ~2 s when it runs the tiny model; the
values are chosen so that every accepted one is also cheap to run.
"""

from __future__ import annotations

import io
import logging
import runpy
import sys
import tempfile
from pathlib import Path

import torch
from hydra.core.global_hydra import GlobalHydra
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BASE = (
    "model=tiny_random",
    "doc_tokens=[32]",
    "readers=[hf]",
    "exactness.enabled=false",
    "timing.warmup=0",
    "timing.repeats=1",
    "timing.docs=1",
)
WORDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
# {dir} is a fresh folder of the example; {file} a file in it
VALUES: dict[str, st.SearchStrategy] = {
    "exp_name": st.sampled_from(["ok", "../../escape", "a/b", ".", "..", ".hidden", "x" * 300, "a b", ""]) | WORDS,
    "results_dir": st.sampled_from(["{dir}/r", "", "{file}/r", "/proc/kvbench", "{dir}/" + "y" * 300, "{dir}/a\\,b"]),
    "timing.repeats": st.integers(-3, 2) | st.sampled_from([10**22, "abc", "1.5", "null", "[1]", "inf"]),
    "timing.warmup": st.integers(-2, 1) | st.sampled_from([10**9, "x"]),
    "timing.docs": st.sampled_from([0, 1, 10**9, "many"]),
    "doc_tokens": st.sampled_from(["[32]", "[0]", "[-1]", "[]", "[100000000]", "abc", "32", "[32,null]"]),
    "seed": st.sampled_from([0, -1, 2**70, "abc"]),
    "device": st.sampled_from(["cpu", "auto", "cuda", "cuda:abc", "tpu"]),
    "dtype": st.sampled_from(["float32", "int3", "float64"]),
    "exactness.gen_tokens": st.sampled_from([0, 1, 10**12]),
    "audit.margin": st.sampled_from(["inf", "nan", "0.5", "2", "-1", "abc"]),
    "tier.url": st.sampled_from(["REDIS://h:1/0", "http://h", "redis://h:x/0", "'redis://:hunter2@h:1/0'", "null"]),
    "tier.dir": st.sampled_from(["/proc/kvbench", "''", "{file}/x", "{dir}/kv"]),
    "model.tokenizer": st.sampled_from(["/nonexistent", "{file}", "{dir}"]),
    "model": st.sampled_from(["tiny_random", "nope", "gguf"]),
    "model.path": st.sampled_from(["/etc/passwd", "{file}", "{dir}"]),
    "+nokey": st.sampled_from(["1"]),
}
# known keys with hostile values, and now and then a key of any name with any text
KNOWN = st.dictionaries(st.sampled_from(sorted(VALUES)), st.none(), min_size=1, max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: VALUES[k] for k in keys})
)
ANY = st.dictionaries(st.from_regex(r"\+?[a-z_]{1,8}(\.[a-z_]{1,8})?", fullmatch=True), WORDS, max_size=1)
OVERRIDES = st.tuples(KNOWN, ANY).map(lambda pair: {**pair[1], **pair[0]})


def _run_kvbench(args: list[str]) -> tuple[int, str]:
    """``python -m kvbench ARGS`` in this process: its exit code and stderr (logging and streams restored)."""
    err, root = io.StringIO(), logging.getLogger()
    saved = sys.argv, sys.stdout, sys.stderr, list(root.handlers), root.level
    sys.argv, sys.stdout, sys.stderr = ["kvbench", *args], io.StringIO(), err
    code = 0
    try:
        runpy.run_module("kvbench", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv, sys.stdout, sys.stderr = saved[:3]
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in saved[3]:
            root.addHandler(handler)
        root.setLevel(saved[4])
        GlobalHydra.instance().clear()
        torch.use_deterministic_algorithms(False)
    return code, err.getvalue()


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples in every CI run; widen locally with a random seed
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(overrides=OVERRIDES)
def test_any_config_ends_in_one_line_exit_2_and_no_folder_or_a_normal_run(overrides, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # the entry point sets it to 1
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        work = tmp / "work"
        work.mkdir()
        (work / "a-file").write_text("a file")
        fill = lambda v: str(v).replace("{dir}", str(work)).replace("{file}", str(work / "a-file"))
        args = [*BASE, *(f"{k}={fill(v)}" for k, v in overrides.items())]
        if "results_dir" not in overrides:
            args.append(f"results_dir={work / 'r'}")
        code, err = _run_kvbench(args)
        lines = [line for line in err.splitlines() if line.strip() and "━" not in line]  # progress bars aside
        made = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.name != "a-file" and p != work)
        if code == 0:
            results = Path(fill(overrides.get("results_dir", "{dir}/r")).replace("\\,", ","))
            assert list(results.rglob("rows.jsonl")), (args, err[-2000:])
            outside = [p for p in made if not (results.is_relative_to(tmp / p) or (tmp / p).is_relative_to(results))]
            assert outside == [], (args, outside)  # a run writes under results_dir only
            assert "hunter2" not in err
        else:
            assert code == 2 and len(lines) == 1 and lines[0].startswith("kvbench: config error: "), (args, err)
            assert "hunter2" not in lines[0]
            assert made == [], (args, made)  # nothing written for a config that was refused
