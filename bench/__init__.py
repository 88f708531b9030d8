"""Benchmarks of the workflow engine: audit replay throughput, memory, fire() latency.

Run ``python -m bench.run``; see bench/README.md.
"""

from __future__ import annotations

import os

# Benchmarks run the app on its development keys (in-process and in the servers they start);
# the app and the worker refuse those keys outside development, so say it once here.
os.environ.setdefault("GZSB_ENV", "development")
