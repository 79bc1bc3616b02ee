"""What the handlers import at cold start (issue 11): no pydantic, and no more than measured.

The four handlers are imported in a fresh interpreter, as Lambda does, and the modules it then
holds are checked; the layer's requirements must not bring pydantic back either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from proxymx_tools.layercheck import import_closure, layer_modules

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ("check_outcome", "configure_instance", "enable_proxy_protocol", "reconcile")
FORBIDDEN = ("pydantic", "pydantic_core", "aws_lambda_powertools.utilities.parser", "fastjsonschema")

IMPORT_HANDLERS = """
import importlib.util, json, sys
from pathlib import Path

import pytest
from proxymx_tools.layercheck import import_closure, layer_modules
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


# ----- the lean cold start (issue 11, item 3): what each handler pays at import -----------------

# One handler's cold import, in a fresh interpreter as Lambda does: the proxymx modules it then
# holds and the dataclasses they define (each frozen dataclass costs ~0.5 ms of CPU at every cold
# start on Python 3.13: `dataclass` compiles its generated methods from source, and Lambda keeps
# nothing between cold starts). Measured with `make bench`; these are deterministic stand-ins.
COLD_IMPORT = """
import dataclasses, importlib.util, inspect, json, sys
from pathlib import Path
path = Path(sys.argv[1])
spec = importlib.util.spec_from_file_location("app", path)
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
ours = sorted(m for m in sys.modules if m == "proxymx" or m.startswith("proxymx."))
found = {
    f"{name}.{attr}": value
    for name in [*ours, "app"]
    for attr, value in vars(sys.modules[name]).items()
    if inspect.isclass(value) and dataclasses.is_dataclass(value) and value.__module__ == name
}
# Frozen dataclasses that compiled their own __eq__/__hash__/__repr__ (@dataclass(frozen=True)
# rather than proxymx.frozen's @frozen, which shares them).
compiled = [
    name for name, value in found.items()
    if value.__dataclass_params__.frozen and value.__repr__.__module__ != "proxymx.frozen"
]
print(json.dumps({"modules": sorted(sys.modules), "ours": ours, "dataclasses": sorted(found),
                  "compiled": sorted(compiled)}))
"""

# The ceilings, as measured after the lean-import work (2026-12-01). A change that raises one
# must pay for itself: re-measure with `make bench` (every function <= 1.20x `import boto3`) and
# raise the ceiling here in the same commit, saying what it bought.
CEILINGS = {
    # handler: (proxymx modules, dataclasses)
    # Raised on 2026-12-01 when the cutover, the operator controls and the paged inventory joined
    # (the state table, the kill switch, the cutover records are read on every such invocation);
    # measured then with `python -m proxymx_tools.bench_coldstart`: 1.17 / 1.19 / 1.18 / 1.20x boto3.
    "check_outcome": (31, 33),
    "configure_instance": (32, 38),
    # Lowered again on 2026-12-01: the event models are imported by the event paths only
    # (the sweep parses no CloudTrail event), and the refresh of stale targets, with the launch
    # side's SSM and claim code it needs, only by an invocation that has a stale target.
    "enable_proxy_protocol": (30, 29),
    "reconcile": (32, 39),
}
# Imported at use, never at cold start: what only some invocations need.
LAUNCH_SIDE = (
    "proxymx.launch.plan",
    "proxymx.launch.claims",
    "proxymx.launch.runcommand",
    "proxymx.launch.configure",
    "proxymx.launch.sends",
    "proxymx.launch.autoscaling",
    "proxymx.models.lifecycle",
)
NOT_AT_COLD_START = {
    # CheckOutcome reads a status event and an invocation: never a lifecycle event.
    "check_outcome": ("proxymx.models.lifecycle",),
    # A load balancer event sends a command only to refresh a stale target or for a cutover: the
    # launch side is imported then (proxymx.loadbalancer.refresh, cutover_flow).
    "enable_proxy_protocol": (*LAUNCH_SIDE, "proxymx.loadbalancer.refresh"),
    # The sweep's launch side runs only for a group with instances waiting, a stale target or a
    # cutover's command (most sweeps have none of them).
    "reconcile": (
        *LAUNCH_SIDE,
        "proxymx.loadbalancer.refresh",
        # The CloudTrail and Attach* event models: the sweep has no event to parse.
        "proxymx.models.cloudtrail",
        "proxymx.models.attach",
    ),
}
# Never in any handler's cold start: boto3 is imported at the first AWS call (the bench's
# baseline holds it), X-Ray's SDK costs ~350 ms, the rest are tooling or validation we left.
NEVER = ("boto3", "aws_xray_sdk", "moto", "proxymx_tools", "aws_lambda_powertools.utilities.batch")


def cold_import(handler: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", COLD_IMPORT, str(ROOT / "functions" / handler / "app.py")],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "layers" / "common"), "AWS_DEFAULT_REGION": "us-east-1"},
    )
    found: dict[str, list[str]] = json.loads(done.stdout)
    return found


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_cold_start_stays_within_its_module_and_dataclass_ceilings(handler: str) -> None:
    # Given one handler / When a fresh interpreter imports it, as a Lambda cold start does
    found = cold_import(handler)
    # Then it holds no more proxymx modules and dataclasses than measured within the limit
    modules_max, dataclasses_max = CEILINGS[handler]
    assert "proxymx.config" in found["ours"]  # the check sees what it should
    hint = "over the measured ceiling: re-measure with `make bench` and raise CEILINGS, or import at use"
    assert len(found["ours"]) <= modules_max, (hint, found["ours"])
    assert len(found["dataclasses"]) <= dataclasses_max, (hint, found["dataclasses"])
    # And its frozen dataclasses share their methods (@frozen: a third of each one's cost)
    assert len(found["dataclasses"]) > 10  # the check sees them
    assert found["compiled"] == [], "use @proxymx.frozen.frozen, not @dataclass(frozen=True), on a cold path"


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_cold_start_leaves_out_what_only_some_invocations_need(handler: str) -> None:
    # Given one handler / When a fresh interpreter imports it
    found = cold_import(handler)
    # Then what it imports at use and what no handler may import at cold start are absent
    unwanted = (*NOT_AT_COLD_START.get(handler, ()), *NEVER)
    present = [m for m in found["modules"] if any(m == u or m.startswith(f"{u}.") for u in unwanted)]
    assert present == []


def test_the_lean_reconcile_still_reaches_the_launch_side_when_it_needs_it() -> None:
    # Given the modules Reconcile imports at use / When the layer check follows every import
    # statement, those inside functions included, from Reconcile's handler
    closure = import_closure(
        [ROOT / "functions" / "reconcile" / "app.py"], layer_modules(ROOT / "layers" / "common")
    )
    # Then the deferred modules are in its closure: they ship in the layer and are proven by the
    # build's sample runs, only not paid for at cold start
    assert set(NOT_AT_COLD_START["reconcile"]) <= closure
