"""A diagram of a flow (graphviz), optionally with one applicant's path highlighted or with
how many applications are in each state right now (the admin workbench's funnel)."""

from __future__ import annotations

from collections.abc import Mapping

import graphviz

from gzsb.workflow.spec import FlowSpec

FONT = "Noto Sans CJK SC"
ROLE_COLOURS = {"student": "#0b5cad", "staff": "#1c7c3a", "admin": "#8a5a00", "system": "#6b7785"}


# Funnel shading, from no applications to the state holding the most.
HEAT_LOW, HEAT_HIGH = (0xF5, 0xF7, 0xFA), (0xF6, 0xB2, 0x6B)


def heat(count: int, most: int) -> str:
    """Fill colour of a state holding ``count`` of the ``most`` any state holds."""
    share = count / most if most > 0 else 0.0
    rgb = (round(lo + (hi - lo) * share) for lo, hi in zip(HEAT_LOW, HEAT_HIGH, strict=True))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def render_svg(
    flow: FlowSpec, path_states: list[tuple[str, str]] | None = None, counts: Mapping[str, int] | None = None
) -> bytes:
    """The flow as SVG. ``counts``: applications per state, shown in each state's box (and
    any state not in this flow as a note, so nobody disappears from the funnel)."""
    taken = set(path_states or ())
    most = max(counts.values(), default=0) if counts is not None else 0
    dot = graphviz.Digraph(flow.flow, format="svg", engine="dot")
    dot.attr(rankdir="TB", fontname=FONT, label=flow.title, labelloc="t", fontsize="18")
    dot.attr("node", fontname=FONT, shape="box", style="rounded,filled", fillcolor="#f5f7fa", fontsize="11")
    dot.attr("edge", fontname=FONT, fontsize="9")
    dot.node("__start__", "", shape="point", width="0.15")
    dot.edge("__start__", flow.initial)
    for name, state in flow.states.items():
        attrs = {"peripheries": "2", "fillcolor": "#dff3e4"} if state.final else {}
        if any(name in pair for pair in taken):
            attrs["color"] = "#b00020"
        label = f"{state.label}\n{name}"
        if counts is not None:
            n = counts.get(name, 0)
            label += f"\n{n} 人"
            if not state.final:
                attrs["fillcolor"] = heat(n, most)
        dot.node(name, label, **attrs)
    for t in flow.transitions:
        role = t.actors[0]
        label = t.label or t.event
        if t.guards:
            label += "\n[" + ", ".join(g.describe() for g in t.guards) + "]"
        attrs = {"color": ROLE_COLOURS.get(role, "#222222"), "fontcolor": ROLE_COLOURS.get(role, "#222222")}
        if role == "system":
            attrs["style"] = "dashed"
        if (t.source, t.dest) in taken:
            attrs.update(color="#b00020", penwidth="2.5")
        dot.edge(t.source, t.dest, label=label, **attrs)
    for timer in flow.timers:
        hours = timer.after.total_seconds() / 3600
        dot.node(f"timer_{timer.state}", f"定时 {hours:g} 小时 → {timer.event}", shape="note", fontsize="9")
        dot.edge(f"timer_{timer.state}", timer.state, style="dotted", arrowhead="none")
    elsewhere = {k: n for k, n in (counts or {}).items() if k not in flow.states and n}
    if elsewhere:
        lines = "\n".join(f"{k}: {n} 人" for k, n in sorted(elsewhere.items()))
        dot.node("__elsewhere__", f"不在此流程中的状态\n{lines}", shape="note", fillcolor="#fde2e2")
    return dot.pipe(format="svg")
