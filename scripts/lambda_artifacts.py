"""Post-``sam build`` steps, run by the runtime's interpreter (python3.13; stdlib only).

Subcommands (see scripts/sam-build.sh for the order):

- ``prune LAYER FUNCTION_DIR...``: keep in the layer only the packages the handlers really import.
  Each handler is imported, then run on sample events, in a fresh ``python -B`` with the built
  layer on ``sys.path``; every file of ``sys.modules`` under the layer is recorded. A package
  directory is kept (whole: its data files, lazily imported siblings) when one of its modules
  was imported; a package none of them imported is removed, and so is a top-level module.
  Distribution metadata (``*.dist-info``) stays: ``importlib.metadata`` may ask for it.
- ``compile DIR...``: bytecode for this interpreter with ``unchecked-hash`` invalidation (the
  zip a Lambda deploy makes resets timestamps, so the default timestamp check would reject the
  ``.pyc`` and Lambda's read-only ``/opt`` would make every cold start recompile), then check
  that every ``.py`` has its ``__pycache__/<name>.cpython-3XX.pyc``.
- ``prove LAYER MAX_MB FUNCTION_DIR...``: every handler, from the pruned and compiled
  artifacts, runs its sample events in a fresh interpreter; the layer is at most MAX_MB MB.
- ``host-native LAYER DEST``: on a machine that is not arm64, the layer's compiled
  distributions (pydantic_core) for this machine, so that the steps above can load the layer.
- ``runtime-boto3 SOURCE_SITE_PACKAGES DEST``: boto3 and its dependencies copied OUTSIDE the
  layer and compiled once: what the Lambda runtime provides (``/var/runtime``), for the proof
  and the cold-start bench.
"""

from __future__ import annotations

import compileall
import importlib.util
import json
import os
import platform
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

# Sample events per function (build directory name): (events/ file, wrap in an SQS record,
# what the handler must do). None of them reaches AWS: they are ignored, out of scope or
# malformed, so the proof needs no credentials and no network, yet goes through the handler's
# decorators, the parsing and the reporting (metrics flush, logger, batch response).
SAMPLES: dict[str, list[tuple[str, bool, str]]] = {
    "CheckOutcomeFunction": [
        ("ssm-status-foreign-document.json", False, "returns"),
        ("malformed-ssm-missing-instance.json", False, "MalformedEvent"),
    ],
    "ConfigureInstanceFunction": [
        # One batch, one record out of scope (settled) and one malformed (a batch item failure).
        ("lifecycle-out-of-scope.json+malformed-lifecycle-missing-token.json", True, "returns"),
    ],
    "EnableProxyProtocolFunction": [
        ("nlb-create-application-lb.json", False, "returns"),
        ("malformed-elb-missing-load-balancer-name.json", False, "MalformedEvent"),
    ],
    "ReconcileFunction": [
        ("malformed-reconcile (inline)", False, "MalformedEvent"),
    ],
}
BOTO3_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
MARKER = "LAMBDA-ARTIFACTS-MODULES "

# Runs in the child: the runtime's view (function code first, then the layer, then the
# runtime's own boto3), the handler imported, each sample run, the imported files reported.
CHILD = r"""
import json, sys
function_dir, layer, boto3_dir, samples_json = sys.argv[1:5]
sys.path[:0] = [function_dir, layer]
if boto3_dir:
    sys.path.append(boto3_dir)

class Context:
    function_name = "proof"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:proof"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/proof"
    log_stream_name = "proof"
    def get_remaining_time_in_millis(self):
        return 60000

import app
from proxymx.errors import MalformedEvent
for name, event, expected in json.loads(samples_json):
    try:
        app.lambda_handler(event, Context())
        outcome = "returns"
    except MalformedEvent:
        outcome = "MalformedEvent"
    if outcome != expected:
        raise SystemExit(f"{name}: expected {expected}, got {outcome}")
files = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""})
print("LAMBDA-ARTIFACTS-MODULES " + json.dumps(files))
"""


def fail(message: str) -> None:
    raise SystemExit(f"lambda-artifacts: {message}")


def _events(function: str, events_dir: Path) -> list[tuple[str, dict[str, object], str]]:
    loaded: list[tuple[str, dict[str, object], str]] = []
    for name, sqs, expected in SAMPLES[function]:
        if name.startswith("malformed-reconcile"):
            event: dict[str, object] = {"source": "aws.events", "detail-type": "not a schedule", "detail": {}}
        elif sqs:
            records = [
                {
                    "messageId": f"m{index}",
                    "receiptHandle": f"r{index}",
                    "body": (events_dir / part).read_text(),
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:proof",
                    "awsRegion": "us-east-1",
                }
                for index, part in enumerate(name.split("+"))
            ]
            event = {"Records": records}
        else:
            event = json.loads((events_dir / name).read_text())
        loaded.append((name, event, expected))
    return loaded


def host_view(layer: Path) -> Path:
    """The layer as this machine can load it: itself on arm64; elsewhere a copy
    (``.aws-sam/host-view/<layer>/python``) whose compiled extensions are swapped for the same
    versions built for this machine
    (``PROXYMX_HOST_NATIVE``, a ``pip install --target`` of them). Only the binaries differ:
    every ``.py`` and ``.pyc`` is the built one."""
    if platform.machine() in {"aarch64", "arm64"}:
        return layer
    # Beside the build directory, never in it: sam deploy zips everything under an artifact.
    view = layer.parents[2] / "host-view" / layer.parent.name / layer.name
    if view.exists():
        shutil.rmtree(view)
    shutil.copytree(layer, view, symlinks=True)
    native = Path(os.environ.get("PROXYMX_HOST_NATIVE", "/nonexistent"))
    for so in list(view.rglob("*aarch64*.so")):
        module = so.name.split(".")[0]
        relative = so.parent.relative_to(view)
        found = sorted((native / relative).glob(f"{module}.*{platform.machine()}*.so"))
        if not found:
            machine = platform.machine()
            fail(f"{so.relative_to(view)} is built for arm64 and PROXYMX_HOST_NATIVE has no {machine} build")
        so.unlink()
        shutil.copy2(found[0], so.parent / found[0].name)
    return view


def run_handler(function_dir: Path, layer: Path, boto3_dir: str, events_dir: Path) -> list[str]:
    """Import the handler, run its samples in a fresh interpreter; the files it imported
    (paths in the layer as built, when the child ran from its host view)."""
    view = host_view(layer)
    function = function_dir.name
    if function not in SAMPLES:
        fail(f"no sample events for {function}: add them to SAMPLES in {__file__}")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "proof",
        "AWS_SECRET_ACCESS_KEY": "proof",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "proxymx",
        "POWERTOOLS_METRICS_NAMESPACE": "Proxymx",
        "AWS_LAMBDA_FUNCTION_NAME": function,
    }
    samples = json.dumps(_events(function, events_dir))
    done = subprocess.run(
        [sys.executable, "-B", "-I", "-c", CHILD, str(function_dir), str(view), boto3_dir, samples],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        fail(f"{function} does not run from the built artifacts:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    files: list[str] = json.loads(lines[-1][len(MARKER) :])
    return [str(layer / Path(f).relative_to(view)) if Path(f).is_relative_to(view) else f for f in files]


def _functions(args: list[str]) -> list[Path]:
    return [Path(arg).resolve() for arg in args]


def prune(layer: Path, functions: list[Path], boto3_dir: str, events_dir: Path) -> None:
    imported: set[Path] = set()
    for function_dir in functions:
        imported |= {Path(f).resolve() for f in run_handler(function_dir, layer, boto3_dir, events_dir)}
    inside = {f for f in imported if f.is_relative_to(layer)}
    keep_dirs = {f.parent for f in inside if f.name != "__init__.py"} | {f.parent for f in inside}
    removed = 0
    for top in sorted(layer.iterdir()):
        if top.name.endswith(".dist-info"):
            continue
        if top.is_file():
            if top.resolve() not in inside and top.suffix in {".py", ".so", ".pth"}:
                top.unlink()
                removed += 1
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
            # Judge each directory holding code on its own (its subpackages are judged apart).
            if directory.name == "__pycache__" or not directory.exists():
                continue
            if not any(directory.glob("*.py")) and not any(directory.glob("*.so")):
                continue
            if directory.resolve() not in keep_dirs:
                shutil.rmtree(directory)
                removed += 1
        holds_code = top.exists() and (any(top.glob("*.py")) or any(top.glob("*.so")))
        if holds_code and top.resolve() not in keep_dirs:
            shutil.rmtree(top)
            removed += 1
    print(f"lambda-artifacts: pruned {removed} unimported package(s)/module(s) from the layer")


def compile_dirs(dirs: list[Path]) -> None:
    tag = sys.implementation.cache_tag
    for directory in dirs:
        ok = compileall.compile_dir(
            str(directory),
            quiet=1,
            workers=1,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        if not ok:
            fail(f"compileall failed in {directory}")
        missing = [
            str(py)
            for py in directory.rglob("*.py")
            if not Path(importlib.util.cache_from_source(str(py))).is_file()
        ]
        if missing:
            fail(f"{len(missing)} file(s) without {tag} bytecode in {directory}, e.g. {missing[:3]}")
    print(f"lambda-artifacts: {tag} bytecode (unchecked-hash) for every .py of {len(dirs)} artifact(s)")


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def prove(layer: Path, max_mb: float, functions: list[Path], boto3_dir: str, events_dir: Path) -> None:
    for function_dir in functions:
        run_handler(function_dir, layer, boto3_dir, events_dir)
    size = size_mb(layer)
    if size > max_mb:
        fail(f"the layer is {size:.1f} MB unzipped, above the {max_mb:g} MB limit")
    names = ", ".join(f.name for f in functions)
    print(f"lambda-artifacts: {names} run their samples from the built artifacts")
    print(f"lambda-artifacts: layer {size:.1f} MB unzipped <= {max_mb:g} MB")


def runtime_boto3(source: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in BOTO3_PACKAGES:
        origin = source / name
        if origin.is_dir():
            shutil.copytree(origin, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif origin.is_file():
            shutil.copy2(origin, dest / name)
        else:
            fail(f"{origin} is missing (boto3 and its dependencies come from the dev venv)")
    compile_dirs([dest])


def host_native(layer: Path, dest: Path) -> None:
    """``pip install --target DEST`` the layer's compiled distributions, same versions, for this
    machine (nothing to do on arm64). Kept between builds: one download per version."""
    if platform.machine() in {"aarch64", "arm64"}:
        return
    pins = []
    for record in sorted(layer.glob("*.dist-info/RECORD")):
        if any(line.split(",")[0].endswith(".so") for line in record.read_text().splitlines()):
            name, version = record.parent.name.removesuffix(".dist-info").rsplit("-", 1)
            pins.append(f"{name}=={version}")
    stamp = dest / ".pins"
    if not pins or (stamp.is_file() and stamp.read_text() == " ".join(pins)):
        return
    shutil.rmtree(dest, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--root-user-action=ignore", "--no-deps", "--only-binary=:all:", "--target", str(dest), *pins]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        fail(f"pip could not fetch {' '.join(pins)} for {platform.machine()}:\n{done.stderr[-2000:]}")
    stamp.write_text(" ".join(pins))


def main(argv: list[str]) -> None:
    command, *args = argv
    boto3_dir = os.environ.get("PROXYMX_RUNTIME_BOTO3", "")
    events_dir = Path(os.environ.get("PROXYMX_EVENTS", "events")).resolve()
    if command == "prune":
        prune(Path(args[0]).resolve(), _functions(args[1:]), boto3_dir, events_dir)
    elif command == "compile":
        compile_dirs(_functions(args))
    elif command == "prove":
        prove(Path(args[0]).resolve(), float(args[1]), _functions(args[2:]), boto3_dir, events_dir)
    elif command == "host-native":
        host_native(Path(args[0]), Path(args[1]))
    elif command == "runtime-boto3":
        runtime_boto3(Path(args[0]), Path(args[1]))
    else:
        fail(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
