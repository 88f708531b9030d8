"""Where in the YAML text a flow problem is: key path → line number (1-based).

The loader and validator name problems by key path (``transitions[4].guards[0]``,
``states.paid.page``, ``windows.registration.closes``); the editor in the admin workbench
shows each at its line. The text is composed with PyYAML (nodes keep their marks) and the
node tree is walked along the path; a path that goes further than the text (a required key
that is missing) stops at the deepest node that exists. Syntax errors carry their own line
in the message. No Flask here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import yaml

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_SYNTAX_LINE = re.compile(r"^line (\d+), column (\d+): (.*)$", re.DOTALL)
# Suffixes the loader adds to a path (``states.x (the key)``) and the top-level marker.
_KEY_SUFFIX = " (the key)"
TOP = "(top)"


@dataclass(frozen=True)
class Located:
    """One problem of a flow text: its line (1-based, None if unknown), key path and message."""

    line: int | None
    path: str
    message: str
    column: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "path": self.path, "message": self.message}


def parse_path(path: str) -> list[str | int]:
    """``transitions[4].guards[0]`` → ``["transitions", 4, "guards", 0]``."""
    parts: list[str | int] = []
    for match in _SEGMENT.finditer(path):
        name, index = match.groups()
        parts.append(int(index) if index is not None else name)
    return parts


def compose(text: str) -> yaml.Node | None:
    """The node tree of ``text`` (None when it is empty or not valid YAML)."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def node_line(root: yaml.Node | None, path: str) -> int | None:
    """The 1-based line of the deepest node along ``path`` in ``root``."""
    if root is None:
        return None
    path = path.strip()
    if path in ("", TOP):
        return int(root.start_mark.line) + 1
    if path.endswith(_KEY_SUFFIX):
        path = path[: -len(_KEY_SUFFIX)]
    node: yaml.Node = root
    line = root.start_mark.line
    parts = parse_path(path)
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line
            i += 1
            continue
        if isinstance(node, yaml.MappingNode):
            found = _mapping_entry(node, parts, i)
            if found is None:
                break
            key_node, value_node, used = found
            # The key's line: for a block value it is where the entry starts.
            line, node = key_node.start_mark.line, value_node
            i += used
            continue
        break
    return int(line) + 1


def _mapping_entry(node: yaml.MappingNode, parts: list[str | int], start: int) -> tuple[Any, Any, int] | None:
    """The entry whose key is ``parts[start]`` (or several parts joined by dots, for keys
    that contain dots), with how many parts it used."""
    entries = {str(k.value): (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    for end in range(start + 1, len(parts) + 1):
        chunk = parts[start:end]
        if any(isinstance(p, int) for p in chunk[1:]):
            break
        key = ".".join(str(p) for p in chunk)
        if key in entries:
            key_node, value_node = entries[key]
            return key_node, value_node, end - start
    return None


def split_problem(problem: str, source: str) -> tuple[str, str]:
    """``source: path: message`` → (path, message); the source prefix is optional."""
    text = problem[len(source) + 2 :] if problem.startswith(f"{source}: ") else problem
    if _SYNTAX_LINE.match(text):
        return "", text
    path, sep, message = text.partition(": ")
    return (path, message) if sep else ("", text)


def locate(text: str, problems: list[str], source: str) -> list[Located]:
    """Every problem with its line in ``text``."""
    root = compose(text)
    out: list[Located] = []
    for problem in problems:
        path, message = split_problem(problem, source)
        syntax = _SYNTAX_LINE.match(message) if not path else None
        if syntax:
            line, column, rest = int(syntax.group(1)), int(syntax.group(2)), syntax.group(3)
            out.append(Located(line, "", rest, column))
            continue
        out.append(Located(node_line(root, path) if path else None, path, message))
    return out
