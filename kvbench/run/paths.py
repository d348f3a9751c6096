"""Where a run writes, checked before Hydra makes a folder there.

Hydra creates the run folder ``results_dir/exp_name/<overrides>`` (and a multirun's sweep
folder) before kvbench sees the config, so the checks that keep it inside ``results_dir`` run
as OmegaConf resolvers inside those paths (``conf/config.yaml``): a traversing ``exp_name``,
an empty ``results_dir`` or one through a file ends in one ``ConfigError`` line and no folder.
The disk tier's ``tier.dir`` is checked the same way once the settings are loaded.

A folder is usable when its deepest existing ancestor is a folder this process can create
entries in; the probe creates an empty temporary folder there and removes it at once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from kvbench.config.errors import ConfigError
from kvbench.config.paths import check_name, check_path
from kvbench.config.schema import KVBenchConfig
from kvbench.run.folder_names import run_dirname


def check_usable_folder(key: str, value: str) -> None:
    """``value`` names a folder that exists or can be made, by this process, without a file in the way.

    Raises
    ------
    ConfigError
        Naming ``key``: a file on the path, or a folder where nothing can be created (``/proc``, read-only).
    """
    existing = Path(os.path.expanduser(value)).absolute()
    while not existing.exists() and existing != existing.parent:  # exists() is False through a file too
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}={value!r} is invalid: {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".kvbench-probe-", dir=existing))
    except OSError as exc:
        raise ConfigError(
            f"{key}={value!r} is invalid: cannot create anything in {existing} ({exc.strerror or exc})"
        ) from None


# results_dir folders that did not exist when first resolved: Hydra makes them for this process
_NEW_RESULTS: set[Path] = set()


def results_folder(value: str) -> str:
    """Resolver ``kvb_results``: ``results_dir`` once it is a usable folder path."""
    check_path("results_dir", value)
    check_usable_folder("results_dir", value)
    if not Path(value).exists():
        _NEW_RESULTS.add(Path(value).absolute())
    return value


def remove_new_results_dirs() -> None:
    """Remove the results_dir folders this process made, where a failed config left them empty."""
    for path in _NEW_RESULTS:
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def experiment_folder(value: str) -> str:
    """Resolver ``kvb_exp``: ``exp_name`` once it is one safe folder name."""
    check_name("exp_name", value)
    return value


def register_resolvers() -> None:
    """The resolvers ``conf/config.yaml`` builds run and sweep folder paths with."""
    OmegaConf.register_new_resolver("kvb_results", results_folder, replace=True)
    OmegaConf.register_new_resolver("kvb_exp", experiment_folder, replace=True)
    OmegaConf.register_new_resolver("kvb_dirname", run_dirname, replace=True)


def check_tier_dir(settings: KVBenchConfig) -> None:
    """The disk tier's folder is usable (``tier.dir=/proc/x`` fails here, not at every point), and a
    redis server binary the user named exists and is executable (an error, not a skipped point)."""
    if settings.experiment == "tiers" and settings.tier.name == "disk":
        from kvbench.tiers.disk import DEFAULT_DIR

        check_usable_folder("tier.dir", settings.tier.dir or DEFAULT_DIR)
    binary = settings.tier.server_bin
    if settings.experiment == "tiers" and settings.tier.name == "redis" and binary and settings.tier.url is None:
        path = shutil.which(binary) or binary
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ConfigError(
                f"tier.server_bin={binary!r} is invalid: allowed an executable redis-server or valkey-server"
            )
