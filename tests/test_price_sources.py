"""Where each price comes from: every entry names the page read and the day, and is either primary
(the provider's own page) or marked secondary, in its flag and its note, and so in the paper's table."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from omegaconf import OmegaConf

from kvbench.config.prices import PriceSheet
from kvbench.config.schema import ConfigError, load_settings
from kvbench.report.econ_tables import prices_table

ROOT = Path(__file__).resolve().parents[1]
SHEETS = sorted((ROOT / "conf" / "cost").glob("*.yaml"))
# Hosts of third-party copies and data files: never a provider's own price page.
THIRD_PARTY_HOSTS = {"github.com", "raw.githubusercontent.com", "gist.github.com"}


def _sheet(path: Path) -> PriceSheet:
    sheet = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PriceSheet), OmegaConf.load(path)))
    assert isinstance(sheet, PriceSheet)
    return sheet


@pytest.mark.parametrize("path", SHEETS, ids=lambda p: p.stem)
def test_every_price_is_primary_or_marked_secondary(path):
    for section, key, price in _sheet(path).entries():
        name = f"{section}.{key}"
        assert price.source.startswith("https://") and len(price.date) == 10, name
        if price.secondary:
            assert (price.note or "").startswith("secondary:"), f"{name}: a secondary entry's note says so first"
        else:
            assert price.cites is None, f"{name}: a primary entry quotes no one"
            assert urlparse(price.source).hostname not in THIRD_PARTY_HOSTS, f"{name}: not the provider's page"
            assert "secondary" not in (price.note or ""), name


def test_cites_on_a_primary_entry_fails_in_one_line(make_cfg):
    key = "cost.egress.runpod_pods"
    with pytest.raises(ConfigError) as info:
        load_settings(make_cfg("+exp=economics", f"{key}.cites=https://example.org/prices"))
    message = f"{key}.cites='https://example.org/prices' is invalid: allowed only on a secondary entry"
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def _entry(**extra) -> dict:
    return dict(provider="P", usd=1.0, unit="GB", source="https://example.org/p", date="2026-12-04", **extra)


def test_the_price_table_daggers_secondary_sources_only():
    sheet = {"egress": {"own": _entry(), "quoted": _entry(secondary=True, cites="https://vendor.example/p")}}
    tex = prices_table(sheet)
    rows = [line for line in tex.splitlines() if line.startswith("P &")]
    assert rows[0].endswith(r"& [1] \\") and rows[1].endswith(r"& [2]$^\dagger$ \\")
    assert r"\item[2] $^\dagger$ \url{https://vendor.example/p}, via \url{https://example.org/p}" in tex
    assert r"\item[$^\dagger$] secondary:" in tex


def test_a_sheet_without_the_flag_renders_as_before():
    tex = prices_table({"egress": {"old": _entry(cites="https://vendor.example/p")}})
    assert "dagger" not in tex and r"\url{https://vendor.example/p}, via \url{https://example.org/p}" in tex
