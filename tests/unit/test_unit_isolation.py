"""tests/unit is pure logic: none of its modules imports the embedded AWS (moto), directly,
through a helper, or inside a test function. Such tests belong in tests/integration."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from support import ROOT

UNIT = Path(__file__).resolve().parent
EMBEDDED = ("moto", "proxymx_tools.embedded", "proxymx_tools.seed", "proxymx_tools.seed_launch")


def _is_embedded(name: str) -> bool:
    return any(name == module or name.startswith(f"{module}.") for module in EMBEDDED)


def imported(source: str) -> set[str]:
    """Every module an import statement names (``from a import b``: ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_scan_sees_every_spelling() -> None:
    source = "def f():\n    from proxymx_tools import embedded\nimport moto.core\n"
    assert {name for name in imported(source) if _is_embedded(name)} == {
        "proxymx_tools.embedded",
        "moto.core",
    }


def test_no_unit_test_names_the_embedded_aws_in_an_import() -> None:
    # Given every import statement of tests/unit, those inside functions included
    named = {
        f"{path.name}: {name}"
        for path in sorted(UNIT.glob("*.py"))
        for name in imported(path.read_text(encoding="utf-8"))
        if _is_embedded(name)
    }
    # Then none names moto or the modules that enter it
    assert named == set()


def test_importing_every_unit_test_module_loads_no_embedded_aws() -> None:
    # Given a fresh interpreter importing every unit test module (what collection does)
    modules = sorted(path.stem for path in UNIT.glob("test_*.py"))
    probe = (
        "import sys\n"
        f"sys.path[:0] = [{str(UNIT)!r}, {str(ROOT / 'tests')!r}]\n"
        f"for name in {modules!r}:\n    __import__(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] == 'moto' or m in {EMBEDDED!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    # Then no module of the embedded AWS was loaded on the way (helpers included)
    assert done.stdout.strip() == "[]", done.stdout
