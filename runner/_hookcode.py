"""The hook's code: compiled in the worker template, executed only in a call's child.

The template runs no hook code. It reads and compiles the hook's sources (compiling executes nothing) and
imports, from the Python installation only, the modules the hook's sources name in ``import`` statements,
so that a child finds them already loaded. Each child then executes the hook's module body from the
precompiled code, after every per-call layer and under the call's limits, and calls the handler once.

What is pre-imported is trusted code (installed by the operator): the hook only chooses *which* of those
modules, by naming them. A name the hook's own directory provides (a local ``json.py``), a relative import
and a few standard modules whose import has visible effects are never pre-imported.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import CodeType, ModuleType
from typing import Any, ClassVar

__all__ = (
    "HookCode",
    "HookRejected",
    "check_handler",
    "compile_hook",
    "describe_import_error",
    "execute",
    "handler_of",
    "preimport",
    "prepare_import",
)

# Standard modules whose import does something visible (prints, opens a browser, starts a GUI or a test run).
_NEVER_PREIMPORT = frozenset(
    {"antigravity", "this", "__hello__", "__phello__", "idlelib", "turtledemo", "tkinter", "turtle", "__main__"}
)


class HookRejected(Exception):
    """Raised when the hook's code is not something the runner can call (no such function, wrong shape)."""


@dataclass(frozen=True)
class HookCode:
    """The hook's compiled sources.

    Attributes:
        name: the hook's module name (its file's stem, or its package directory's name).
        main: the path of the file that is the hook module (a package's ``__init__.py``).
        search_dir: the directory put first on ``sys.path`` so that the hook can import its own modules.
        package_dir: the package directory when the hook is a package, else ``None``.
        codes: every compiled source file of the hook, by absolute path.
        imports: the absolute module names its ``import`` statements name, in order of appearance.
    """

    name: str
    main: str
    search_dir: str
    package_dir: str | None
    codes: dict[str, CodeType]
    imports: tuple[str, ...]


def hook_source_files(path: str) -> list[str]:
    """The hook's source files, in the order the template reads them: ``path`` itself for a module; for a
    package every ``.py`` file under it, directories sorted, skipping ``__pycache__`` and hidden directories
    (symlinked directories are not followed)."""
    if not os.path.isdir(path):
        return [path]
    found = []
    for directory, subdirs, files in os.walk(path):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__" and not d.startswith("."))
        found += [os.path.join(directory, f) for f in sorted(files) if f.endswith(".py")]
    return found


def _named_imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            # ``from package import submodule`` imports the submodule too, when it is one.
            names += [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def compile_hook(path: str) -> HookCode:
    """Read and compile the hook at ``path`` (a file, or a package directory). Executes none of it.

    Raises:
        SyntaxError: a source file does not compile (``filename`` and ``lineno`` say where).
        OSError: a source file cannot be read.
        HookRejected: ``path`` is not a Python file or package.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        main = os.path.join(path, "__init__.py")
        if not os.path.isfile(main):
            raise HookRejected(f"{os.path.basename(path)!r} is a directory without an __init__.py")
        name, package_dir = os.path.basename(os.path.normpath(path)), path
        search_dir = os.path.dirname(os.path.normpath(path))
    else:
        main, package_dir = path, None
        name = os.path.splitext(os.path.basename(path))[0]
        search_dir = os.path.dirname(path)
    if not name.isidentifier():
        raise HookRejected(f"{os.path.basename(path)!r} is not an importable Python module name")
    codes: dict[str, CodeType] = {}
    imports: list[str] = []
    for source_path in hook_source_files(path):
        with open(source_path, "rb") as file:
            source = file.read()
        tree = ast.parse(source, filename=source_path)
        imports += _named_imports(tree)
        codes[source_path] = compile(tree, source_path, "exec", dont_inherit=True)
    return HookCode(name, main, search_dir, package_dir, codes, tuple(dict.fromkeys(imports)))


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return os.path.realpath(path).startswith(tuple(os.path.join(root, "") for root in roots))


def _trusted(spec: importlib.machinery.ModuleSpec | None, trusted: tuple[str, ...]) -> bool:
    """Whether importing ``spec`` runs only code the operator installed: a built-in or frozen module, a module
    (a package: every directory of it) under a ``trusted`` directory, or one made by a loader that is itself
    defined there (the sdk's LiteLLM stand-ins)."""
    if spec is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    places = list(spec.submodule_search_locations or []) or ([spec.origin] if spec.has_location and spec.origin else [])
    if places:
        return all(_under(place, trusted) for place in places)
    loader_file = getattr(sys.modules.get(type(spec.loader).__module__), "__file__", None)
    return loader_file is not None and _under(loader_file, trusted)


def preimport(hook: HookCode, trusted: tuple[str, ...]) -> list[str]:
    """Import, in the calling process (the template), the installed modules the hook names.

    Only code the operator installed may run here: each dotted prefix of a name is looked up (which executes
    nothing for a top-level name, and for a submodule only its parent, already checked and imported) and
    imported only if it is built in or lives under a ``trusted`` directory (the Python installation, and
    the runner's and sdk's own directories), never under the hook's own directory or its granted files. A
    module is also skipped when the hook's own directory provides its top-level name, when it is one of a few
    standard modules whose import has visible effects, or when importing it fails for any reason (the child
    then imports it itself and reports the error as the hook's).

    Returns:
        The names that were imported.
    """
    local = [hook.search_dir] if hook.package_dir is None else [hook.search_dir, hook.package_dir]
    trusted = tuple(os.path.realpath(root) for root in trusted)
    done: list[str] = []
    for name in hook.imports:
        top = name.partition(".")[0]
        if top in _NEVER_PREIMPORT or top == hook.name or name in sys.modules:
            continue
        try:
            if importlib.machinery.PathFinder.find_spec(top, local) is not None:
                continue  # the hook's own module of that name wins, as it will in the child
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                prefix = ".".join(parts[:end])
                if prefix in sys.modules:
                    continue
                if not _trusted(importlib.util.find_spec(prefix), trusted):
                    break  # ``from package import attribute`` (no such submodule) ends here too
                importlib.import_module(prefix)
            else:
                done.append(name)
        except BaseException:  # noqa: S112 - anything a failed import raises is the child's to report
            continue
    return done


class _PrecompiledLoader(importlib.machinery.SourceFileLoader):
    """Loads the hook's own modules from the code the template compiled (source only if it was not)."""

    codes: ClassVar[dict[str, CodeType]] = {}

    def get_code(self, fullname: str) -> CodeType:
        code = self.codes.get(self.path)
        if code is not None:
            return code
        compiled = super().get_code(fullname)
        assert compiled is not None
        return compiled


def prepare_import(hook: HookCode) -> importlib.machinery.ModuleSpec:
    """Set the calling process (the template, after its pre-imports) up so that each child only has to run
    :func:`execute`: the hook's directory first on ``sys.path``, its package directories served by a finder
    that uses the precompiled code (so ``import helper`` and ``from . import helper`` work as in LiteLLM), and
    the hook module's spec. Executes nothing of the hook."""
    _PrecompiledLoader.codes = hook.codes
    details = (_PrecompiledLoader, importlib.machinery.SOURCE_SUFFIXES)
    for directory in {os.path.dirname(p) for p in hook.codes}:
        sys.path_importer_cache[directory] = importlib.machinery.FileFinder(directory, details)
    sys.path.insert(0, hook.search_dir)
    locations = [hook.package_dir] if hook.package_dir is not None else None
    loader = _PrecompiledLoader(hook.name, hook.main)
    spec = importlib.util.spec_from_file_location(
        hook.name, hook.main, loader=loader, submodule_search_locations=locations
    )
    assert spec is not None
    return spec


def execute(spec: importlib.machinery.ModuleSpec) -> ModuleType:
    """Execute the hook's module body (``spec`` from :func:`prepare_import`) in the calling process, a call's
    child, and return the module."""
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def handler_of(module: ModuleType, function: str) -> Callable[..., Any]:
    """The handler, as a call needs it: its shape was checked by the import probe (:func:`check_handler`),
    so each call only makes sure the module body defined something callable under that name.

    Raises:
        HookRejected: it did not.
    """
    handler = getattr(module, function, None)
    if not callable(handler):
        raise HookRejected(f"the hook module has no function {function!r}")
    return handler  # type: ignore[no-any-return]


def check_handler(module: ModuleType, function: str) -> Callable[..., Any]:
    """The handler ``function`` of ``module``, checked to be callable with one argument.

    Raises:
        HookRejected: saying what is wrong with it.
    """
    handler = getattr(module, function, None)
    if handler is None:
        raise HookRejected(f"the hook module has no function {function!r}")
    if not callable(handler):
        raise HookRejected(f"{function!r} is a {type(handler).__name__}, not a function")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError) as exc:
        raise HookRejected(f"cannot read the signature of {function!r}: {exc}") from exc
    parameters: Iterable[inspect.Parameter] = signature.parameters.values()
    positional = [
        p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    others = [p for p in parameters if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    takes_varargs = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    if others or len(positional) > 1 or (not positional and not takes_varargs):
        raise HookRejected(
            f"{function!r} must take exactly one argument (the user's OpenID info), its signature is {signature}"
        )
    return handler  # type: ignore[no-any-return]


def describe_import_error(exc: BaseException, path: str) -> str:
    """One line naming an import error and where in the hook's own files (``path``) it happened."""
    if isinstance(exc, SyntaxError):
        where = f"line {exc.lineno}" if exc.lineno else "unknown line"
        return f"syntax error at {where} of {os.path.basename(exc.filename or 'the hook')}: {exc.msg}"
    hook_root = path if os.path.isdir(path) else os.path.dirname(path)
    ours = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(hook_root)]
    where = f" ({os.path.basename(ours[-1].filename)}, line {ours[-1].lineno})" if ours else ""
    return f"{type(exc).__name__}: {exc}{where}"
