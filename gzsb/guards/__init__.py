"""Guards: pure predicates registered by name. Importing this package registers them."""

from __future__ import annotations

from gzsb.guards import checks as checks
from gzsb.guards import identity as identity
