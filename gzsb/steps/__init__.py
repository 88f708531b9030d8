"""Step handlers registered by name. Importing this package registers them."""

from __future__ import annotations

from gzsb.steps import enrollment as enrollment
from gzsb.steps import identity as identity
from gzsb.steps import payment as payment
from gzsb.steps import review as review
