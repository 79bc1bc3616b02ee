"""``python -m proxymx_tools.layercheck``: the built layer holds exactly what the handlers import."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from proxymx_tools import layercheck
from proxymx_tools import template as tpl
from support import ROOT


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def toy(tmp_path: Path) -> tuple[Path, Path]:
    """A handler and a small layer: a function-level import, a relative one, a types-only one."""
    layer = tmp_path / "layer"
    write(
        layer,
        {
            "proxymx/__init__.py": "",
            "proxymx/a.py": (
                "from typing import TYPE_CHECKING\n"
                "from .sub import c\n"
                "if TYPE_CHECKING:\n    from proxymx import typed\n"
                "def later():\n    from proxymx import b\n    return b\n"
            ),
            "proxymx/b.py": "import json\n",
            "proxymx/sub/__init__.py": "",
            "proxymx/sub/c.py": "from ..b import *\n",
            "proxymx/typed.py": "",
        },
    )
    handler = tmp_path / "fn" / "app.py"
    write(tmp_path / "fn", {"app.py": "import boto3\nfrom proxymx.a import later\n"})
    return handler, layer


def test_the_closure_follows_function_level_and_relative_imports_not_type_checking(
    toy: tuple[Path, Path],
) -> None:
    # Given a handler importing proxymx.a, which imports b inside a function, sub.c relatively,
    # and typed only for the type checker
    handler, layer = toy
    # When the layer is checked
    report = layercheck.check([handler], layer)
    # Then everything but the types-only module is reached, and that one is reported unused
    assert report.reached == ("proxymx", "proxymx.a", "proxymx.b", "proxymx.sub", "proxymx.sub.c")
    assert report.unused == ("proxymx.typed",)
    assert not report.ok


def test_a_module_the_handlers_import_but_the_layer_lacks_is_reported(toy: tuple[Path, Path]) -> None:
    handler, layer = toy
    (layer / "proxymx" / "typed.py").unlink()
    handler.write_text("from proxymx.a import later\nfrom proxymx.gone import thing\n", encoding="utf-8")
    report = layercheck.check([handler], layer)
    assert report.unused == ()
    assert report.missing == ("proxymx.gone",)
    assert not report.ok


def test_the_real_layer_holds_only_what_the_four_handlers_import() -> None:
    # Given the source of the layer and of the four functions
    handlers = sorted((ROOT / "functions").glob("*/app.py"))
    assert len(handlers) == 4
    # When checked / Then every module is imported by some handler, and none is missing
    report = layercheck.check(handlers, ROOT / "layers" / "common")
    assert (report.unused, report.missing) == ((), ())
    assert {"proxymx.aws", "proxymx.errors", "proxymx.config"} <= set(report.reached)


def fake_build(build: Path) -> Path:
    """``.aws-sam/build`` as sam build lays it out: <Function>/app.py and CommonLayer/python."""
    template = tpl.load_template()
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            entry = tpl.function_entry(template, logical_id)
            shutil.copytree(entry.code_dir, build / logical_id)
    layer = build / "CommonLayer" / "python"
    shutil.copytree(ROOT / "layers" / "common" / "proxymx", layer / "proxymx")
    return layer


def test_the_command_fails_the_build_on_an_extra_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a build whose layer is exactly the source: the command passes
    layer = fake_build(tmp_path / "build")
    assert layercheck.main([str(tmp_path / "build")]) == 0
    # When a module no handler imports is added to the built layer (tooling crept back in)
    (layer / "proxymx" / "cli.py").write_text("import argparse\n", encoding="utf-8")
    # Then the command fails and names it
    assert layercheck.main([str(tmp_path / "build")]) == 1
    assert "proxymx.cli" in capsys.readouterr().err


def test_the_command_says_when_there_is_no_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert layercheck.main([str(tmp_path / "nothing")]) == 1
    assert "run sam build first" in capsys.readouterr().err
