from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ._jail import Jail


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def jail(tmp_path: Path) -> Jail:
    tmp_root = tmp_path / "hookjail-tmp"
    tmp_root.mkdir(mode=0o700)
    hook_dir = tmp_path / "operator"
    hook_dir.mkdir()
    (hook_dir / "allowed.csv").write_text("a@example.com\n")
    (hook_dir / "config.yaml").write_text("general_settings:\n  master_key: sk-master-secret\n")
    return Jail(tmp_root=tmp_root, tmp_dir=tmp_root / "call-1", other_tmp=tmp_root / "call-2", hook_dir=hook_dir)


@pytest.fixture
def operator_dir(tmp_path: Path) -> Path:
    """What an operator's deployment directory holds: config.yaml with the master key, the SQLite database and
    a data file the hook is granted."""
    directory = tmp_path / "deploy"
    directory.mkdir()
    (directory / "config.yaml").write_text(
        "general_settings:\n  master_key: sk-hookjail-master\n  database_url: sqlite:///proxy.db\n"
    )
    with sqlite3.connect(directory / "proxy.db") as db:
        db.execute("create table users (id text, api_key text)")
        db.execute("insert into users values ('admin', 'sk-hookjail-admin-key')")
    db.close()
    (directory / "allowed.csv").write_text("a@example.com,admin\n")
    return directory
