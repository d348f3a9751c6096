"""The price sheet: every price has a source and the date it was read, or the config fails in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from kvbench.config.prices import PriceSheet
from kvbench.config.schema import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[1]
SHEETS = sorted(p.stem for p in (ROOT / "conf" / "cost").glob("*.yaml"))


@pytest.mark.parametrize("name", SHEETS)
def test_committed_sheets_load_with_sources_and_dates(make_cfg, name):
    settings = load_settings(make_cfg("+exp=economics", f"cost={name}"))
    entries = list(settings.cost.entries())
    assert len(entries) >= 10 and {s for s, _, _ in entries} == {"gpu_hour", "egress", "storage", "api_tariffs"}
    for _, _, price in entries:
        assert price.source.startswith("https://") and len(price.date) == 10


KEY = "cost.gpu_hour.runpod_h200_secure"


@pytest.mark.parametrize(
    "override, message",
    [
        ("source=null", "source=None is invalid: allowed the URL of the page the price was read from"),
        ("source='a friend told me'", "source='a friend told me' is invalid: allowed the URL"),
        ("date=null", "date=None is invalid: allowed a date YYYY-MM-DD (the day the price was read)"),
        ("date='last week'", "date='last week' is invalid: allowed a date YYYY-MM-DD"),
        ("usd=-1.0", "usd=-1.0 is invalid: allowed a price >= 0 in USD"),
        ("kind=cheap", "kind='cheap' is invalid: allowed on-demand | spot | market | reserved"),
    ],
)
def test_a_price_without_source_or_date_fails_in_one_line(make_cfg, override, message):
    with pytest.raises(ConfigError) as info:
        load_settings(make_cfg("+exp=economics", f"{KEY}.{override}"))
    assert str(info.value).startswith(f"{KEY}.{message}")
    assert "\n" not in str(info.value)


def test_a_sheet_built_in_code_is_checked_the_same_way():
    price = dict(gpu="H200", usd=4.0, source="https://example.org/prices")  # no date
    with pytest.raises(Exception) as info:
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PriceSheet), {"gpu_hour": {"h200": price}}))
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert any(isinstance(e, ConfigError) and str(e).startswith("cost.gpu_hour.h200.date=None") for e in chain)


def test_economics_names_only_prices_on_the_sheet(make_cfg):
    with pytest.raises(ConfigError, match=r"^economics.gpu_price='nope' is invalid: allowed runpod_h200_secure"):
        load_settings(make_cfg("+exp=economics", "economics.gpu_price=nope"))
    with pytest.raises(ConfigError, match=r"^economics.hosting.redis='x' is invalid: allowed .*hbm"):
        load_settings(make_cfg("+exp=economics", "economics.hosting.redis=x"))


def test_command_line_refuses_a_price_without_a_date(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvbench",
            "+exp=economics",
            f"results_dir={tmp_path}",
            "cost.gpu_hour.runpod_h200_secure.date=null",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, HYDRA_FULL_ERROR="0"),
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "kvbench: config error: cost.gpu_hour.runpod_h200_secure.date=None is invalid: "
        "allowed a date YYYY-MM-DD (the day the price was read)"
    )
    assert not any(tmp_path.rglob("rows.jsonl"))
