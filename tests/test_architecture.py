"""The domain is the business only: it imports nothing from Slack, the scheduler or the app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parent.parent / "domain"
FORBIDDEN = frozenset({"slack_bolt", "slack_sdk", "apscheduler", "bot", "handlers", "scheduler"})


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
    names = {p.name for p in domain_modules()}
    assert {"services.py", "model.py", "rules.py"} <= names


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
        "from domain import rules\n"
        "from . import model\n",
        encoding="utf-8",
    )

    modules = [module for _, module in imported_modules(sample)]

    assert sorted(m for m in modules if m in FORBIDDEN) == sorted(FORBIDDEN)
    assert "domain" in modules
