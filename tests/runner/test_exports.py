from __future__ import annotations

import runner


def test_public_names_match_all() -> None:
    public = {name for name in vars(runner) if not name.startswith("_") and name != "annotations"}
    assert public == set(runner.__all__)


def test_every_error_is_a_hook_error_with_an_outcome() -> None:
    errors = [
        getattr(runner, name)
        for name in runner.__all__
        if name.startswith("Hook") and name.endswith(("Error", "Timeout", "Exceeded", "Crashed", "Raised"))
    ]
    outcomes = {error.outcome for error in errors}
    assert all(issubclass(error, runner.HookError) for error in errors)
    assert {"import_error", "timeout", "limit", "crashed", "raised", "protocol", "output"} <= outcomes
