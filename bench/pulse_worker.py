"""``pulse worker`` with extra Faust settings from BENCH_FAUST_SETTINGS (JSON).

Lets ``bench.run --d-settings`` try tunings without editing the worker; with no
settings it is exactly ``pulse worker``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import faust

EXTRA: dict[str, Any] = json.loads(os.environ.get("BENCH_FAUST_SETTINGS") or "{}")

if EXTRA:
    _init = faust.App.__init__

    def _patched(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.update(EXTRA)
        _init(self, *args, **kwargs)

    faust.App.__init__ = _patched  # type: ignore[method-assign]

if __name__ == "__main__":
    from pipeline.cli import main

    sys.exit(main())
