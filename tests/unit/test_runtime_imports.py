"""The Lambda path carries no pydantic (issue 11: it was the largest share of a cold start).

The four handlers are imported in a fresh interpreter, as Lambda does, and the modules it then
holds are checked; the layer's requirements must not bring pydantic back either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ("check_outcome", "configure_instance", "enable_proxy_protocol", "reconcile")
FORBIDDEN = ("pydantic", "pydantic_core", "aws_lambda_powertools.utilities.parser", "fastjsonschema")

IMPORT_HANDLERS = """
import importlib.util, json, sys
from pathlib import Path
root = Path(sys.argv[1])
for name in sys.argv[2:]:
    spec = importlib.util.spec_from_file_location(f"app_{name}", root / "functions" / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.lambda_handler)
print(json.dumps(sorted(sys.modules)))
"""


def imported_by_handlers() -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_HANDLERS, str(ROOT), *HANDLERS],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "layers" / "common"), "AWS_DEFAULT_REGION": "us-east-1"},
    )
    modules: list[str] = json.loads(done.stdout)
    return modules


def test_the_handlers_import_no_pydantic_and_no_parser() -> None:
    # Given a fresh interpreter / When it imports the four handlers
    modules = imported_by_handlers()
    # Then our modules are there (the check sees what it should) and none of the forbidden ones
    assert {"proxymx.config", "proxymx.models.cloudtrail", "proxymx.models.lifecycle"} <= set(modules)
    assert [m for m in modules if any(m == f or m.startswith(f"{f}.") for f in FORBIDDEN)] == []


def test_the_layer_requirements_do_not_list_pydantic() -> None:
    lines = (ROOT / "layers" / "common" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    packages = [
        line.split("==")[0].strip().lower().replace("_", "-") for line in lines if line and line[0].isalpha()
    ]
    assert "aws-lambda-powertools" in packages
    assert [p for p in packages if p.startswith("pydantic") or p == "fastjsonschema"] == []
