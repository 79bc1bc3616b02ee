"""scripts/lambda_artifacts.py: the layer keeps exactly the packages a handler imports, and
every artifact gets bytecode that survives a zip (no Lambda, no sam build needed)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lambda_artifacts.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lambda_artifacts", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, Path, Path]:
    module = _load()
    # A layer as sam build leaves it: a used package with an unused subpackage, an unused
    # package, an unused top-level module, distribution metadata.
    layer = tmp_path / "build" / "CommonLayer" / "python"
    _write(layer / "proxymx" / "__init__.py")
    _write(layer / "proxymx" / "errors.py", "class MalformedEvent(Exception):\n    pass\n")
    _write(layer / "used" / "__init__.py", "from used import lazy_sibling_user\n")
    _write(layer / "used" / "lazy_sibling_user.py")
    _write(layer / "used" / "data.json", "{}")
    _write(layer / "used" / "unused_sub" / "__init__.py")
    _write(layer / "unused" / "__init__.py")
    _write(layer / "unused_module.py")
    _write(layer / "used-1.0.dist-info" / "RECORD", "used/__init__.py,,\n")
    function = tmp_path / "build" / "DemoFunction"
    _write(function / "app.py", "import used\n\ndef lambda_handler(event, context):\n    return {}\n")
    monkeypatch.setattr(module, "SAMPLES", {"DemoFunction": []})
    return module, layer, function


def test_prune_keeps_the_imported_packages_whole_and_removes_the_rest(
    artifacts: tuple[ModuleType, Path, Path], tmp_path: Path
) -> None:
    module, layer, function = artifacts

    # When the layer is pruned to the handler's import closure
    module.prune(layer, [function], "", tmp_path)

    # Then the imported packages stay with their data files, the rest is gone, metadata stays
    assert (layer / "used" / "__init__.py").is_file()
    assert (layer / "used" / "data.json").is_file()
    assert (layer / "proxymx" / "errors.py").is_file()
    assert not (layer / "used" / "unused_sub").exists()
    assert not (layer / "unused").exists()
    assert not (layer / "unused_module.py").exists()
    assert (layer / "used-1.0.dist-info" / "RECORD").is_file()


def test_the_proof_fails_when_a_handler_cannot_import_from_the_layer(
    artifacts: tuple[ModuleType, Path, Path], tmp_path: Path
) -> None:
    module, layer, function = artifacts
    # Given a layer that lost a package the handler imports
    shutil.rmtree(layer / "used")

    # When the artifacts are proven / Then the build stops, naming the function
    with pytest.raises(SystemExit, match="DemoFunction does not run"):
        module.prove(layer, 8.0, [function], "", tmp_path)


Artifacts = tuple[ModuleType, Path, Path]


def test_the_proof_fails_above_the_size_limit(artifacts: Artifacts, tmp_path: Path) -> None:
    module, layer, function = artifacts
    # Given a layer of 2 MB
    _write(layer / "used" / "big.bin", "x" * 2_000_000)

    # When it is proven against a 1 MB limit / Then the build stops with the size
    with pytest.raises(SystemExit, match=r"2\.0 MB unzipped, above the 1 MB limit"):
        module.prove(layer, 1.0, [function], "", tmp_path)


def test_compile_writes_unchecked_hash_bytecode_for_every_source(artifacts: Artifacts) -> None:
    module, layer, function = artifacts

    # When the artifacts are compiled
    module.compile_dirs([layer, function])

    # Then every .py has its .pyc for this interpreter, flagged unchecked-hash (flags = 0b01:
    # hash-based, check_source off), so a zip's timestamps cannot invalidate it
    for source in [*layer.rglob("*.py"), *function.rglob("*.py")]:
        pyc = Path(importlib.util.cache_from_source(str(source)))
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{pyc}: flags {flags:#b}"
    assert sys.implementation.cache_tag in next(iter(function.rglob("*.pyc"))).name
