"""A diagram of a flow (graphviz), optionally with one applicant's path highlighted."""

from __future__ import annotations

import graphviz

from gzsb.workflow.spec import FlowSpec

FONT = "Noto Sans CJK SC"
ROLE_COLOURS = {"student": "#0b5cad", "staff": "#1c7c3a", "admin": "#8a5a00", "system": "#6b7785"}


def render_svg(flow: FlowSpec, path_states: list[tuple[str, str]] | None = None) -> bytes:
    taken = set(path_states or ())
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
        dot.node(name, f"{state.label}\n{name}", **attrs)
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
    return dot.pipe(format="svg")
