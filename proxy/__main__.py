"""``python -m proxy`` is the ``hookjail`` command."""

from __future__ import annotations

from .cli import main

main()
