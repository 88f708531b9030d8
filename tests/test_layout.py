"""The package layout as rules: no import cycles, a Flask-free engine, standard file names.

The import graph is read from the source with ``ast``: every ``import`` counts, inside
functions too (a function-level import hides a cycle, it does not remove it); imports
under ``if TYPE_CHECKING:`` do not count (they never run). The two places that load modules
by name (``gzsb.bootstrap``: each area's guards, steps and views; ``gzsb.cli``: each command
group) count as importing what they load, so ``importlib`` cannot hide a cycle either.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gzsb"

# Edges that other branches are removing; the lead tightens this list after merging.
TEMPORARY_EDGES = {
    # The web must not import the worker (which builds the app and the engine): the cycle
    # app → bootstrap → views → worker.tasks → bootstrap/app runs through these.
    ("gzsb.identity.views", "gzsb.worker.tasks"): "worker/payments owner is removing it",
    ("gzsb.identity.views", "gzsb.worker.drain"): "worker/payments owner is removing it",
    ("gzsb.payments.views", "gzsb.worker.tasks"): "worker/payments owner is removing it",
    ("gzsb.regform.views", "gzsb.worker.tasks"): "worker/payments owner is removing it (the render job)",
    ("gzsb.admin.flow_job_views", "gzsb.worker.tasks"): "queues fleet jobs the same way; goes with the others",
    ("gzsb.admin.flow_views", "gzsb.worker.tasks"): "queues fleet jobs the same way; goes with the others",
}
# Function-level imports of our own modules that stay for now, and why.
TEMPORARY_LOCAL_IMPORTS = {
    "gzsb.worker.drain": "worker/payments owner is removing it",
    "gzsb.worker.tasks": "worker/payments owner is removing it",
    "gzsb.identity.views": "worker/payments owner is removing it (the enqueue_job import)",
}

ROOT_MODULES = {"__init__", "app", "config", "errors", "extensions", "store", "bootstrap"}
AREAS = (
    "accounts", "enrollment", "identity", "payments", "materials", "staff", "onsite", "regform", "audit", "admin",
    "appeals",
)  # fmt: skip
AREA_FILES = {"__init__", "service", "steps", "guards", "views", "names"}
# Extra modules an area may hold, and why.
AREA_EXTRAS = {
    "accounts": {
        "idcard": "ID-number parsing (check digit, birth date), used by forms and the demo",
        "otp": "SMS verification codes: their own rules and table",
        "passwords": "password rules and hashing",
        "session": "who is logged in; every area's views import login_required from here",
        "ratelimit": "rate limits of the account pages (Flask-Limiter, shared by all nodes)",
        "forms": "the account pages' form and field checks",
        "validators": "pure field checks (NFKC, ASCII digits, mobile, name) shared with admin and the step schemas",
        "devsms": "the SMS dev page, its own blueprint (development only)",
        "first_login": "the one-time password change at first log-in and the role → home mapping (own blueprint)",
    },
    "identity": {
        "attempts": "the per-ID-number daily cap on face comparisons: one atomic statement and its table",
        "retention": "deleting ID-card images after identity is settled (a worker job of its own)",
    },
    "payments": {
        "orders": "the order record (payment_orders), the one copy every page and step reads",
        "settle": "gateway calls after the fact (query as notify, refunds, close, reconcile), never on the notify path",
    },
    "audit": {
        "fleet": "streaming every history through the replay, in one process or a pool over id ranges",
        "console": "what the auditor console shows, kept apart from the verify/export service",
        "dossier": "one application in the auditor console: find, timeline, diagram, what-if table",
        "log": "the transparency log in the database: sequencer, checkpoints, witness round",
        "bundle": "offline bundles: export with inclusion proofs, verification with pinned keys",
    },
    "admin": {
        "flows": "flow versions, proposals, two-person publish (service.py is accounts and 确认点)",
        "flow_fleet": "streaming the in-flight applications through impact and migration",
        "flow_views": "the flow workbench pages (their own blueprint)",
        "flow_jobs": "impact reports and migrations over a large fleet, run by the worker with progress",
        "flow_job_views": "the progress of those jobs, polled by the pages (their own blueprint)",
    },
    "enrollment": {
        "api": "the JSON API of the engine (its own blueprint)",
        "catalog": "the catalogue of 招生院校/专业: CSV rows, import and search",
        "catalog_views": "catalogue search and 学籍 pages (their own blueprint)",
        "registry": "the 学籍/学历 registry import",
        "journey": "the 流程页面's truth: stage rows, blocked reasons, the one button, deadlines (pure)",
    },
    "appeals": {
        "files": "the appeal images: checked like every upload, stored encrypted, with their own retention",
    },
    "regform": {
        "content": "the 报名表's content, serial number and verification code (service.py renders and caches)",
    },
}
# Packages outside the areas; their own rules are tested below.
# waitroom: the opening-hour waiting room, a WSGI layer in front of the app (no area of the journey).
# ops: logs, health and metrics wired into the app (no area of the journey either).
OTHER_PACKAGES = {"models", "workflow", "adapters", "common", "worker", "cli", "templates", "static", "waitroom", "ops"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, *, local: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it sits inside a function (TYPE_CHECKING blocks skipped)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _type_checking_only(child):
            yield from (pair for node in child.orelse for pair in _imports_in(node, local))
            continue
        yield from _imports_in(child, local)


def _imports_in(node: ast.AST, local: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, local
        return
    inner = local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    yield from _imports(node, local=inner)


def _target(name: str) -> str | None:
    """The gzsb module an import name lands in (``gzsb.a.b.func`` → ``gzsb.a.b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> dict[str, bool]:
    """Our modules that ``module`` imports → True if only inside functions."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: dict[str, bool] = {}
    for node, local in _imports(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = _absolute(module, node)
            names = [f"{base}.{alias.name}" for alias in node.names] or [base]
        for name in names:
            target = _target(name)
            if target is not None and target != module:
                found[target] = found.get(target, True) and local
    return found


def third_party_imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top: set[str] = set()
    for node, _local in _imports(tree):
        if isinstance(node, ast.Import):
            top.update(alias.name.split(".")[0] for alias in node.names)
        elif not node.level and node.module:
            top.add(node.module.split(".")[0])
    return top


GRAPH = {module: imports_of(module) for module in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def loaded_by_name() -> dict[str, set[str]]:
    """What ``gzsb.bootstrap`` and ``gzsb.cli`` import with importlib."""
    from gzsb import bootstrap

    plugins = {f"gzsb.{area}.{kind}" for area in bootstrap.AREAS for kind in ("guards", "steps", "views")}
    return {
        "gzsb.bootstrap": (plugins | set(bootstrap.EXTRA_VIEWS)) & set(MODULES),
        "gzsb.cli": {m for m in MODULES if m.startswith("gzsb.cli.")},
    }


def _accessor(module: str, target: str) -> bool:
    # Views take vault()/engine()/storage() from the wiring module, which loads them only
    # when create_app() runs (a registration, not an import-order dependency).
    return target == "gzsb.bootstrap" and module in loaded_by_name()["gzsb.bootstrap"]


def edges(skip_allowed: bool = True) -> dict[str, set[str]]:
    graph = {module: set(targets) for module, targets in GRAPH.items()}
    for module, loaded in loaded_by_name().items():
        graph[module] |= loaded
    return {
        module: {t for t in targets if not (skip_allowed and ((module, t) in TEMPORARY_EDGES or _accessor(module, t)))}
        for module, targets in graph.items()
    }


# ------------------------------------------------------------------------ the checker


def test_cycle_finder_finds_a_cycle_through_function_level_imports(tmp_path: Path) -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\ndef f():\n    import y\nimport z\n"
    seen = {(n.names[0].name, local) for n, local in _imports(ast.parse(source)) if isinstance(n, ast.Import)}
    assert seen == {("y", True), ("z", False)}


def test_graph_sees_the_imports_it_should() -> None:
    assert GRAPH["gzsb.app"]["gzsb.bootstrap"] is False
    assert GRAPH["gzsb.worker.tasks"]["gzsb.app"] is True  # inside a function: still an edge
    assert {"gzsb.identity.views", "gzsb.accounts.devsms"} <= edges()["gzsb.bootstrap"]
    assert "gzsb.cli.flow" in edges()["gzsb.cli"]


def test_only_the_wiring_modules_load_modules_by_name() -> None:
    users = sorted(m for m, path in MODULES.items() if "import_module(" in path.read_text(encoding="utf-8"))
    assert users == sorted(loaded_by_name())


# ------------------------------------------------------------------------ the rules


def test_no_import_cycles() -> None:
    cycle = find_cycle(edges())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_temporary_allowances_are_still_needed() -> None:
    # An allowance whose import is gone must be deleted, so the list only shrinks.
    stale = [edge for edge in TEMPORARY_EDGES if edge[1] not in GRAPH.get(edge[0], {})]
    assert not stale, f"remove from TEMPORARY_EDGES: {stale}"
    no_longer_local = [m for m in TEMPORARY_LOCAL_IMPORTS if not any(GRAPH.get(m, {}).values())]
    assert not no_longer_local, f"remove from TEMPORARY_LOCAL_IMPORTS: {no_longer_local}"


def test_no_function_level_imports_of_our_modules() -> None:
    # Third-party imports inside functions are fine (heavy or optional: deepface, twilio);
    # our own ones only hide cycles.
    local = {
        module: sorted(t for t, only_local in targets.items() if only_local)
        for module, targets in GRAPH.items()
        if module not in TEMPORARY_LOCAL_IMPORTS
    }
    offenders = {module: targets for module, targets in local.items() if targets}
    assert not offenders, f"lift these imports to module level: {offenders}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("gzsb.workflow")))
def test_workflow_is_the_engine_without_flask_or_areas(module: str) -> None:
    assert "flask" not in third_party_imports(module)
    forbidden = {"gzsb.app", "gzsb.bootstrap"} | {f"gzsb.{area}" for area in AREAS}
    bad = sorted(
        t
        for t in GRAPH[module]
        if (module, t) not in TEMPORARY_EDGES and any(t == f or t.startswith(f + ".") for f in forbidden)
    )
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("gzsb.adapters")))
def test_adapters_import_no_area(module: str) -> None:
    bad = sorted(t for t in GRAPH[module] if t.split(".")[1] in AREAS or t in {"gzsb.app", "gzsb.bootstrap"})
    assert not bad, f"{module} imports {bad}"


def test_package_root_holds_only_the_core_modules() -> None:
    root = {path.stem for path in PACKAGE.glob("*.py")}
    assert root <= ROOT_MODULES, f"move into an area folder: {sorted(root - ROOT_MODULES)}"
    folders = {path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders <= set(AREAS) | OTHER_PACKAGES, f"unknown folders: {sorted(folders - set(AREAS) - OTHER_PACKAGES)}"


@pytest.mark.parametrize("area", AREAS)
def test_area_folders_use_the_standard_file_names(area: str) -> None:
    allowed = AREA_FILES | set(AREA_EXTRAS.get(area, {}))
    names = {path.stem for path in (PACKAGE / area).glob("*.py")}
    assert names <= allowed, f"gzsb/{area}: {sorted(names - allowed)} (a standard name, or an extra with a reason)"


def test_no_module_is_too_long() -> None:
    # ~400 lines: a module a newcomer reads in one go. Listed modules are being split elsewhere.
    owned_elsewhere = {"gzsb.worker.tasks": "worker owner"}
    long = {
        m: n
        for m, path in MODULES.items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 420 and m not in owned_elsewhere
    }
    assert not long, f"split these modules: {long}"


# ------------------------------------------------------------------------ the unit tier

APP_FIXTURES = {"app", "client", "pg_app", "journey", "make_applicant", "eng"}


def test_unit_tests_build_no_app() -> None:
    # `pytest -m unit` stays fast only if its tests need no Flask app and no database.
    tests = PACKAGE.parent / "tests"
    offenders = []
    for path in sorted(tests.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if "pytest.mark.unit" not in ast.unparse(tree):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                used = {a.arg for a in node.args.args} & APP_FIXTURES
                offenders += [f"{path.name}::{node.name} uses {sorted(used)}"] if used else []
            if isinstance(node, ast.Name) and node.id in {"create_app", "_make_app"}:
                offenders.append(f"{path.name} calls {node.id}")
    assert not offenders, offenders
