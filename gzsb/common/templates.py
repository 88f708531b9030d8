"""Template helpers an area offers to every page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint


def template_globals(bp: Blueprint, **values: Any) -> None:
    """Make ``values`` Jinja globals of the app ``bp`` is registered on. Constants and
    functions belong here rather than in a context processor, which would build its dict
    again for every template rendered (and imported macros see globals, not the context)."""
    bp.record_once(lambda state: state.app.jinja_env.globals.update(values))
