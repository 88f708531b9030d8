"""Benchmarks of the workflow engine: audit replay throughput, memory, fire() latency.

Run ``python -m bench.run``; see bench/README.md.
"""

from __future__ import annotations
