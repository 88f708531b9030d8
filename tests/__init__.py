from __future__ import annotations

import os

# Tests are development: default keys allowed (gzsb.config reads this when first imported;
# subprocesses such as the Huey consumers of the worker tests inherit it).
os.environ.setdefault("GZSB_ENV", "development")
