"""The README's examples run as written: the "Writing a hook" tutorial's hook and its test (each marked
``<!-- snippet: NAME -->`` just before its fence) are copied into a temporary directory and the test is run with
pytest in a subprocess, from another directory (so its relative hook path proves ``run_hook_sync`` resolves it
against the test file); the configuration example is loaded by the config loader."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from proxy import load_config

README = Path(__file__).resolve().parents[1] / "README.md"

# <!-- snippet: NAME --> then, at the same indentation, a ```python fence and its body up to the closing fence
_SNIPPET = re.compile(
    r"^(?P<indent>[ \t]*)<!-- snippet: (?P<name>[\w.-]+) -->\n"
    r"(?P=indent)```python\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def snippets() -> dict[str, str]:
    """The marked code blocks of the README, by name, dedented."""
    found: dict[str, str] = {}
    for match in _SNIPPET.finditer(README.read_text(encoding="utf-8")):
        name = match["name"]
        assert name not in found, f"two README snippets are named {name}"
        found[name] = textwrap.dedent(match["body"])
    return found


def test_the_tutorial_marks_its_hook_and_its_test() -> None:
    found = snippets()
    assert {"custom_sso.py", "test_custom_sso.py"} <= set(found), sorted(found)
    assert "def custom_sso_handler" in found["custom_sso.py"]
    assert "custom_sso.py:custom_sso_handler" in found["test_custom_sso.py"]


def test_the_readme_hook_passes_the_readme_test(tmp_path: Path) -> None:
    found = snippets()
    project = tmp_path / "my_proxy"
    elsewhere = tmp_path / "somewhere" / "else"
    project.mkdir()
    elsewhere.mkdir(parents=True)
    for name in ("custom_sso.py", "test_custom_sso.py"):
        (project / name).write_text(found[name], encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(  # noqa: PLW1510 (the exit code is asserted with the output)
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project / "test_custom_sso.py")],
        cwd=elsewhere,  # not the test's directory: the hook's relative path must not depend on it
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    tests = found["test_custom_sso.py"].count("\ndef test_")
    assert tests >= 2
    assert re.search(rf"\b{tests} passed\b", output), output
    assert not list(elsewhere.iterdir())  # nothing was written in the working directory


def test_the_configuration_example_loads(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"^```yaml\n(.*?)^```$", text, re.MULTILINE | re.DOTALL) if "hook_settings:" in b]
    assert blocks, "the README's Configuration section lost its hook_settings example"
    (tmp_path / "config.yaml").write_text(blocks[0], encoding="utf-8")
    config = load_config(tmp_path / "config.yaml", {})
    settings = config.hook_settings
    assert settings.timeout == 5
    assert settings.on_failure == "deny"
    assert settings.policy.allowed_roles is not None
    assert set(settings.policy.allowed_roles) == {"internal_user", "internal_user_viewer"}
