"""The developer's command line: `scripts/test` and `scripts/run` install quietly and only
when needed, and a test that lacks something skips naming the command that provides it —
or, under CI, fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import conftest
from tests.conftest import missing_dependency, postgres_fix, under_ci

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGING_NOISE = ("BuildBackendWarning", "Editable installation", "WARNING: Location")

# --- skips: the command that removes them, and failures under CI ---------------------------


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_without_ci_a_missing_dependency_skips_naming_the_command_that_provides_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)

    with pytest.raises(pytest.skip.Exception) as skipped:
        missing_dependency("the browser test needs /usr/bin/chromium", fix="apt-get install x")

    assert str(skipped.value) == "the browser test needs /usr/bin/chromium; run: apt-get install x"


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_under_ci_a_missing_dependency_fails_instead_of_skipping(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)

    with pytest.raises(pytest.fail.Exception) as failed:
        missing_dependency("PostgreSQL not usable (refused)", fix="pg_ctlcluster … start")

    assert under_ci()
    message = str(failed.value)
    assert "PostgreSQL not usable (refused)" in message and "under CI" in message
    assert message.endswith("run: pg_ctlcluster … start")


def test_postgresql_down_names_the_command_that_starts_the_newest_cluster(tmp_path: Path) -> None:
    for version in ("9.6", "16", "15"):
        (tmp_path / version).mkdir()

    fix = postgres_fix('connection to server at "127.0.0.1" failed: refused', clusters=tmp_path)

    assert fix == "pg_ctlcluster --skip-systemctl-redirect 16 main start"


def test_postgresql_not_installed_names_the_whole_set_up(tmp_path: Path) -> None:
    fix = postgres_fix("Connection refused", clusters=tmp_path / "absent")

    assert fix.startswith("apt-get install -y postgresql && ")
    assert "trust" in fix and "main start" in fix and fix.endswith("-U postgres test")


def test_a_missing_test_database_names_createdb(tmp_path: Path) -> None:
    fix = postgres_fix('FATAL:  database "test" does not exist', clusters=tmp_path)

    assert fix == "createdb -h 127.0.0.1 -p 5432 -U postgres test"


def test_a_refused_login_names_the_trust_line_and_the_reload(tmp_path: Path) -> None:
    (tmp_path / "15").mkdir()

    fix = postgres_fix('password authentication failed for user "postgres"', clusters=tmp_path)

    assert fix == (
        f"sed -i '1i host all postgres 127.0.0.1/32 trust' {tmp_path}/15/main/pg_hba.conf"
        " && pg_ctlcluster --skip-systemctl-redirect 15 main reload"
    )


def test_postgres_unavailable_goes_through_the_same_mechanism(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        conftest.postgres_unavailable("Connection refused")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception) as skipped:
        conftest.postgres_unavailable("Connection refused")
    assert "; run: " in str(skipped.value)


def test_every_skip_in_the_suite_goes_through_missing_dependency() -> None:
    direct = re.compile(r"pytest\.skip\(|mark\.skip|skipif|importorskip")
    mechanism = 'pytest.skip(f"{what}; run: {fix}")'  # in tests/conftest.py
    offenders = []
    for path in sorted((REPO_ROOT / "tests").rglob("*.py")):
        if path.name == Path(__file__).name or "benchmarks" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if direct.search(line) and line.strip() != mechanism:
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert mechanism in (REPO_ROOT / "tests" / "conftest.py").read_text(encoding="utf-8")
    assert offenders == [], "skip through tests.conftest.missing_dependency:\n" + "\n".join(
        offenders
    )


# --- scripts/test and scripts/run: no packaging banner, install only when needed -----------

FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for the venv's python: pip prints what setuptools and pip print, pytest says so.
here="$(cd "$(dirname "$0")" && pwd)"
if [ "$1 $2" = "-m pip" ]; then
  echo "pip $*" >>"$here/../calls"
  echo "WARNING: Location 'file:///nowhere/simple/pip/' is ignored" >&2
  echo "  editable_wheel.py:354: BuildBackendWarning: Editable installation." >&2
  echo "Successfully installed milestone-bot"
  if [ -n "${FAKE_PIP_FAILS:-}" ]; then echo "ERROR: no matching distribution" >&2; exit 1; fi
  printf '#!/usr/bin/env bash\necho "milestone-bot $*"\n' >"$here/milestone-bot"
  chmod +x "$here/milestone-bot"
  exit 0
fi
echo "python $*"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the scripts and pyproject.toml, with a stand-in venv (no real installs)."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for name in ("test", "run"):
        shutil.copy2(REPO_ROOT / "scripts" / name, root / "scripts" / name)
    shutil.copy2(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    tools = {"python": FAKE_PYTHON, "ruff": 'echo "ruff $*"\n', "mypy": 'echo "mypy ok"\n'}
    for name, body in tools.items():
        tool = bin_dir / name
        tool.write_text(body if body.startswith("#!") else "#!/usr/bin/env bash\n" + body)
        tool.chmod(0o755)
    return root


def script(checkout: Path, name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("VENV", "FAKE_PIP_FAILS")}
    environment.update(env)
    return subprocess.run(
        [str(checkout / "scripts" / name), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def pip_calls(checkout: Path) -> list[str]:
    calls = checkout / ".venv" / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def assert_no_packaging_noise(text: str) -> None:
    for noise in PACKAGING_NOISE:
        assert noise not in text, f"{noise!r} printed:\n{text}"
    assert "Successfully installed" not in text


def test_scripts_test_installs_once_without_a_packaging_banner(checkout: Path) -> None:
    first = script(checkout, "test", "tests/test_cli.py")

    assert first.returncode == 0, first.stderr
    assert_no_packaging_noise(first.stdout + first.stderr)
    assert first.stderr == "Installing milestone-bot[test] into .venv…\n"
    assert first.stdout.splitlines() == [
        "ruff check .",
        "ruff format --check .",
        "mypy ok",
        "python -m pytest -n 2 -p no:cacheprovider tests/test_cli.py",
    ]
    assert pip_calls(checkout)[-1] == "pip -m pip install --quiet -e .[test]"

    again = script(checkout, "test", "tests/test_cli.py")

    assert again.returncode == 0
    assert again.stderr == ""  # nothing to install: pyproject.toml is unchanged
    assert len(pip_calls(checkout)) == 2  # pip upgraded and the bot installed, once


def test_scripts_test_installs_again_when_pyproject_changes(checkout: Path) -> None:
    assert script(checkout, "test").returncode == 0
    with (checkout / "pyproject.toml").open("a") as pyproject:
        pyproject.write("# a new dependency\n")

    again = script(checkout, "test")

    assert again.returncode == 0
    assert again.stderr == "Installing milestone-bot[test] into .venv…\n"
    assert len(pip_calls(checkout)) == 4


def test_a_failed_install_shows_pips_output_and_stops(checkout: Path) -> None:
    failed = script(checkout, "test", FAKE_PIP_FAILS="1")

    assert failed.returncode == 1
    assert "ERROR: no matching distribution" in failed.stderr
    assert "installing into .venv failed" in failed.stderr
    assert "mypy ok" not in failed.stdout  # stopped before the checks
    assert not (checkout / ".venv" / ".milestone-bot-install").exists()


def test_scripts_run_installs_quietly_and_reuses_scripts_tests_install(checkout: Path) -> None:
    first = script(checkout, "run", "--help")

    assert first.returncode == 0, first.stderr
    assert_no_packaging_noise(first.stdout + first.stderr)
    assert first.stderr == "Installing milestone-bot into .venv…\n"
    assert pip_calls(checkout)[-1] == "pip -m pip install --quiet -e ."

    assert script(checkout, "test").stderr == "Installing milestone-bot[test] into .venv…\n"
    after_test = script(checkout, "run", "--help")

    assert after_test.returncode == 0
    assert after_test.stdout == "milestone-bot --help\n"
    assert after_test.stderr == ""  # the test tools' install has the bot too
    assert len(pip_calls(checkout)) == 4
