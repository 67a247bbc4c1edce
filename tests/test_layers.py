"""The three floors (proxy → sdk → runner) and proxy's parts: nothing imports upwards or another's privates.

Read from the source (ast), so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports made absolute."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("runner"), ids=str)
def test_runner_imports_neither_sdk_nor_proxy(path: Path) -> None:
    upward = {name for name in _imports(path) if name.split(".")[0] in ("sdk", "proxy")}
    assert upward == set()


@pytest.mark.parametrize("path", _modules("sdk"), ids=str)
def test_sdk_imports_no_proxy_and_only_runners_public_face(path: Path) -> None:
    bad = {
        name
        for name in _imports(path)
        if name.split(".")[0] == "proxy" or (name.startswith("runner.") and name.split(".")[1].startswith("_"))
    }
    assert bad == set()


@pytest.mark.parametrize("path", _modules("proxy"), ids=str)
def test_proxy_imports_only_the_public_modules_of_sdk_and_runner(path: Path) -> None:
    private = {
        name
        for name in _imports(path)
        if name.split(".")[0] in ("sdk", "runner") and any(part.startswith("_") for part in name.split(".")[1:2])
    }
    assert private == set()


def _below_the_web_server() -> list[Path]:
    """proxy's modules but its entry points (``proxy/__init__``, the CLI) and the web server itself."""
    entry = (ROOT / "proxy" / "__init__.py", ROOT / "proxy" / "cli", ROOT / "proxy" / "web")
    return [path for path in _modules("proxy") if not any(path == e or e in path.parents for e in entry)]


@pytest.mark.parametrize("path", _below_the_web_server(), ids=str)
def test_only_the_entry_points_import_the_web_server(path: Path) -> None:
    """The login, the store, the hook and rollout know nothing of HTTP routes."""
    assert {name for name in _imports(path) if name.startswith("proxy.web")} == set()


def test_the_layer_check_sees_relative_imports() -> None:
    """The checks above would pass on nothing if relative imports were misread: the app's module imports the
    login service, two floors of package up, as ``proxy._login``."""
    found = _imports(ROOT / "proxy" / "web" / "_app.py")
    assert "proxy._login.LoginService" in found
    assert "proxy.web._web.Web" in found
    assert "runner.HookImportError" in found
