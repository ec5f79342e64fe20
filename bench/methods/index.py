"""The built-in methods' names, kinds and descriptions, read from source without importing it.

Importing every method module (``baselines``, ``dasm``) pulls in the evaluation loop, pandas and
more: seconds of start-up that ``dasm-bench list`` and an unknown-method error do not need. Each
module registers with a literal ``@register_method("name", Config, kind=..., description=...)``
decorator, so those literals are read from the module's syntax tree instead; the registry then
imports only the module that defines the method actually asked for.

Example::

    index = builtin_method_index()
    index["dm"].module        # "baselines.dm"
    index["dm"].kind          # "matching"
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import pkgutil
from dataclasses import dataclass
from pathlib import Path

BUILTIN_PACKAGES = ("baselines", "dasm")


@dataclass(frozen=True)
class MethodInfo:
    name: str
    module: str          # the module whose import registers it
    kind: str
    description: str


@dataclass(frozen=True)
class MethodIndex:
    methods: dict[str, MethodInfo]
    opaque_modules: tuple[str, ...]   # modules registering with non-literal arguments: must be imported


def _literal(node: ast.AST | None) -> object:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        raise _NotLiteral from None


class _NotLiteral(Exception):
    pass


def _registrations(tree: ast.Module, module: str) -> list[MethodInfo]:
    """``register_method`` decorators of the module's top-level functions, as the decorator would
    record them (description defaults to the first line of the function's docstring)."""
    found = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and getattr(deco.func, "id", getattr(deco.func, "attr", None))
                    == "register_method"):
                continue
            kw = {k.arg: k.value for k in deco.keywords}
            args = list(deco.args)
            name = _literal(args[0] if args else kw.get("name"))
            kind = _literal(args[2] if len(args) > 2 else kw.get("kind")) or "matching"
            description = _literal(args[3] if len(args) > 3 else kw.get("description")) or ""
            if not isinstance(name, str) or not isinstance(kind, str) or not isinstance(description, str):
                raise _NotLiteral
            if not description:
                description = (ast.get_docstring(node, clean=False) or name).strip().splitlines()[0]
            found.append(MethodInfo(name, module, kind, description))
    return found


@functools.lru_cache(maxsize=1)
def builtin_method_index() -> MethodIndex:
    """Every built-in method, found by reading (not importing) each module of the method packages."""
    methods: dict[str, MethodInfo] = {}
    opaque: list[str] = []
    for pkg_name in BUILTIN_PACKAGES:
        spec = importlib.util.find_spec(pkg_name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for mod in pkgutil.iter_modules(spec.submodule_search_locations):
            if mod.name.startswith("_"):
                continue
            full = f"{pkg_name}.{mod.name}"
            base = Path(mod.module_finder.path)  # type: ignore[union-attr]
            path = base / mod.name / "__init__.py" if mod.ispkg else base / f"{mod.name}.py"
            try:
                found = _registrations(ast.parse(path.read_text(encoding="utf-8")), full)
            except (OSError, SyntaxError, UnicodeDecodeError, _NotLiteral):
                opaque.append(full)   # not plain source, or computed arguments: import it to know
                continue
            methods.update((info.name, info) for info in found)
    return MethodIndex(methods, tuple(opaque))
