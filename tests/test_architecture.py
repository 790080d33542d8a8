"""The rooms of the house: the domain is the business only (it imports nothing from Slack,
the scheduler or the app); each layer imports only the layers below it; and no module
of the product imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parent.parent / "domain"
FORBIDDEN = frozenset(
    {"slack_bolt", "slack_sdk", "apscheduler", "stripe", "bot", "handlers", "scheduler", "payments"}
)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in `path`, also inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def domain_modules() -> list[Path]:
    return sorted(DOMAIN.rglob("*.py"))


def test_domain_has_modules_to_check() -> None:
    names = {str(p.relative_to(DOMAIN)) for p in domain_modules()}
    assert {"services/__init__.py", "model.py", "rules.py"} <= names


@pytest.mark.parametrize("path", domain_modules(), ids=lambda p: str(p.relative_to(DOMAIN.parent)))
def test_domain_module_imports_no_slack_scheduler_or_app_code(path: Path) -> None:
    offending = [
        f"{path.relative_to(DOMAIN.parent)}:{line} imports {module}"
        for line, module in imported_modules(path)
        if module in FORBIDDEN
    ]
    assert offending == []


def test_the_import_check_catches_every_forbidden_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import slack_sdk.web\n"
        "from slack_bolt import App\n"
        "def later():\n"
        "    from apscheduler.schedulers.background import BackgroundScheduler\n"
        "    import bot.settings\n"
        "    importlib.import_module('handlers.actions')\n"
        "from scheduler import jobs\n"
        "import stripe\n"
        "from payments import stripe_connect\n"
        "from domain import rules\n"
        "from . import model\n",
        encoding="utf-8",
    )

    modules = [module for _, module in imported_modules(sample)]

    assert sorted(m for m in modules if m in FORBIDDEN) == sorted(FORBIDDEN)
    assert "domain" in modules


# --- layers and circles ------------------------------------------------------------------

ROOT = DOMAIN.parent
# Each room and the rooms above it, which it must not import.
LAYERS = {
    "domain": {"scheduler", "handlers", "bot", "sandbox", "payments"},
    "payments": {"scheduler", "handlers", "bot", "sandbox"},  # the Stripe adapter: domain only
    "scheduler": {"handlers", "bot", "sandbox"},
    "handlers": {"scheduler", "bot", "sandbox"},
    "bot": {"sandbox"},
    "sandbox": set(),  # the top room: the try-out and its local Slack may import anything
}
# The one way up: `milestone-bot sandbox` starts the top room, importing it only inside
# the command (so that nothing below ever loads it otherwise).
LAUNCHERS = {("bot.cli", "sandbox")}


def product_modules() -> dict[str, Path]:
    """Every module of the product (not its tests), by dotted name."""
    found = {}
    for room in LAYERS:
        for path in sorted((ROOT / room).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def module_level_nodes(tree: ast.AST) -> list[ast.AST]:
    """The nodes that run when the module is imported (not those inside functions)."""
    found: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        todo += [
            child
            for child in ast.iter_child_nodes(node)
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        ]
    return found


def imports_of(path: Path, known: set[str], *, eager_only: bool = False) -> set[str]:
    """The product modules `path` imports (the longest known name each import names);
    with `eager_only`, only the imports that run when `path` itself is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    named: list[str] = []
    for node in module_level_nodes(tree) if eager_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            named += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            named += [f"{node.module}.{alias.name}" for alias in node.names]
            named.append(node.module)
    edges = set()
    for name in named:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            edges.add(name)
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_room_imports_a_room_above_it() -> None:
    modules = product_modules()
    wrong = [
        f"{name} imports {target}"
        for name, path in modules.items()
        for target in imports_of(path, set(modules))
        if target.split(".")[0] in LAYERS[name.split(".")[0]]
        and (name, target.split(".")[0]) not in LAUNCHERS
    ]
    assert wrong == []


def test_a_launcher_imports_the_room_above_only_when_it_launches_it() -> None:
    modules = product_modules()
    eager = [
        f"{name} imports {target} when it is imported"
        for name, room in sorted(LAUNCHERS)
        for target in imports_of(modules[name], set(modules), eager_only=True)
        if target.split(".")[0] == room
    ]
    assert eager == []
    lazy = {
        (name, target.split(".")[0])
        for name, _ in LAUNCHERS
        for target in imports_of(modules[name], set(modules))
    }
    assert lazy >= LAUNCHERS, "a launcher that no longer launches: drop it from LAUNCHERS"


def test_no_module_of_the_product_imports_itself_back() -> None:
    modules = product_modules()
    graph = {
        name: {t for t in imports_of(path, set(modules)) if t != name}
        for name, path in modules.items()
    }
    # A package's __init__ that hands its modules' names on is not a circle of code.
    for name in list(graph):
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    assert cycles(graph) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
