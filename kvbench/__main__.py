"""``python -m kvbench [+exp=NAME] [key=value ...]``: compose the config and run it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from kvbench.config import ConfigError, register_configs
from kvbench.rundir import run_dirname

log = logging.getLogger("kvbench")

register_configs()
# Run folders are named by their overrides (sanitised, credentials redacted); none: "base".
OmegaConf.register_new_resolver("kvb_dirname", run_dirname, replace=True)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from kvbench.app import run  # heavy imports after Hydra has parsed the command line

    try:
        hydra_cfg = HydraConfig.get()
        run(cfg, Path(hydra_cfg.runtime.output_dir), overrides=list(hydra_cfg.overrides.task))
    except ConfigError as exc:
        print(f"kvbench: config error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
