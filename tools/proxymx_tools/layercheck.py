"""The layer holds only what the handlers run: ``python -m proxymx_tools.layercheck .aws-sam/build``.

``make build`` (scripts/sam-build.sh) runs this after ``sam build``. It computes the import
closure of the handlers within the ``proxymx`` package, statically (every ``import`` and
``from ... import`` statement found by :mod:`ast`, those inside functions included, starting
from each function's handler module and following every ``proxymx`` module reached), and
compares it with the ``proxymx/**.py`` files the built layer holds:

- a module in the layer that no handler reaches is dead weight in every cold start's zip (and a
  sign that tooling crept back into the runtime package): the check FAILS, naming it;
- a module a handler reaches that the layer lacks would fail at import in Lambda: FAILS too.

Imports under ``if TYPE_CHECKING:`` are not followed: they never run. A dynamic import
(``importlib.import_module("proxymx...")``) is invisible to this check; proxymx has none, and
a handler must not start one.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "proxymx"


def layer_modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Module name -> file of every ``.py`` of ``package`` under ``root`` (the layer's python/)."""
    found: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except the bodies of ``if TYPE_CHECKING:`` (their ``else`` still runs)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _with_parents(name: str) -> list[str]:
    # Importing a.b.c runs a/__init__, a/b/__init__ and a/b/c.
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """The dotted names a module's code imports (candidates: modules, or names inside them)."""
    names: set[str] = set()
    # Relative imports resolve against the importing module's package.
    package = module if is_package else module.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.add(base)
            # "from proxymx import aws": aws may be a module of the package.
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def import_closure(entry_files: Iterable[Path], modules: dict[str, Path], package: str = PACKAGE) -> set[str]:
    """The ``package`` modules (among ``modules``) reached from the entry files, transitively."""
    reached: set[str] = set()
    pending: list[tuple[str, Path, bool]] = [(f"<{path}>", path, False) for path in entry_files]
    while pending:
        module, path, is_package = pending.pop()
        for name in imported_names(path.read_text(encoding="utf-8"), module, is_package=is_package):
            if name != package and not name.startswith(f"{package}."):
                continue
            for candidate in _with_parents(name):
                if candidate in modules and candidate not in reached:
                    reached.add(candidate)
                    file = modules[candidate]
                    pending.append((candidate, file, file.name == "__init__.py"))
    return reached


def missing_imports(
    entry_files: Iterable[Path], modules: dict[str, Path], package: str = PACKAGE
) -> set[str]:
    """``package`` names imported as modules (``import proxymx.x``) that the layer does not hold."""
    missing: set[str] = set()
    for path in entry_files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
                name = node.module if isinstance(node, ast.ImportFrom) else None
                for wanted in [name] if name else [alias.name for alias in node.names]:
                    if (wanted == package or wanted.startswith(f"{package}.")) and wanted not in modules:
                        missing.add(wanted)
    return missing


@dataclass(frozen=True)
class LayerReport:
    shipped: tuple[str, ...]
    reached: tuple[str, ...]
    unused: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.unused and not self.missing


def check(handler_files: Iterable[Path], layer_root: Path, package: str = PACKAGE) -> LayerReport:
    """Compare the handlers' import closure with the ``package`` modules under ``layer_root``."""
    handlers = list(handler_files)
    modules = layer_modules(layer_root, package)
    reached = import_closure(handlers, modules, package)
    # What the handlers and the reached modules import by module path but the layer lacks.
    missing = missing_imports([*handlers, *(modules[name] for name in reached)], modules, package)
    return LayerReport(
        shipped=tuple(sorted(modules)),
        reached=tuple(sorted(reached)),
        unused=tuple(sorted(set(modules) - reached)),
        missing=tuple(sorted(missing)),
    )


def built_artifacts(build_dir: Path, template: dict[str, object]) -> tuple[list[Path], list[Path]]:
    """(handler files, layer roots) of ``sam build``'s output, as template.yaml names them."""
    from proxymx_tools import template as tpl

    resources = template["Resources"]
    assert isinstance(resources, dict)
    handlers: list[Path] = []
    layers: list[Path] = []
    for logical_id, resource in resources.items():
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function":
            entry = tpl.function_entry(template, logical_id)
            handlers.append(build_dir / logical_id / f"{entry.module.replace('.', '/')}.py")
        elif kind == "AWS::Serverless::LayerVersion":
            layers.append(build_dir / logical_id / "python")
    return handlers, layers


def main(argv: list[str] | None = None) -> int:
    from proxymx_tools import template as tpl

    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        usage = "usage: python -m proxymx_tools.layercheck [BUILD_DIR]  (default .aws-sam/build)"
        print(usage, file=sys.stderr)
        return 2
    build_dir = Path(args[0] if args else ".aws-sam/build")
    handlers, layers = built_artifacts(build_dir, tpl.load_template())
    absent = [str(path) for path in [*handlers, *layers] if not path.exists()]
    if absent:
        print(f"layercheck: not in the build: {', '.join(absent)} (run sam build first)", file=sys.stderr)
        return 1
    failed = False
    for layer in layers:
        report = check(handlers, layer)
        if report.unused:
            failed = True
            print(
                f"layercheck: {layer} ships proxymx modules no handler imports: {', '.join(report.unused)} "
                "(tooling belongs in tools/proxymx_tools; dead code goes)",
                file=sys.stderr,
            )
        if report.missing:
            failed = True
            lacking = ", ".join(report.missing)
            print(f"layercheck: handlers import what {layer} lacks: {lacking}", file=sys.stderr)
        if report.ok:
            print(f"layercheck: ok ({len(report.shipped)} proxymx modules, every one imported by a handler)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
