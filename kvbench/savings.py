"""``python -m kvbench.savings tokens=3774 reads=80e6 tier=host model=qwen3_4b``: the savings calculator,
:mod:`kvbench.economics.savings` under a shorter name."""

from __future__ import annotations

import sys

from kvbench.economics.savings import main

if __name__ == "__main__":
    sys.exit(main())
