"""``make bench`` (second table): a handler's cold start the way Lambda pays it.

A cold invocation imports the handler module, then boto3 at the handler's first AWS call. What
counts is what Lambda runs, so every figure comes from:

- the runtime's Python (3.13), not the dev venv's;
- the artifacts exactly as ``make build`` leaves them in ``.aws-sam/build`` (the pruned layer
  and its bytecode; on a machine that is not arm64, its host view, where only the compiled
  extensions are swapped for this machine's build of the same versions);
- ``python -B``: Lambda's ``/opt`` and ``/var/task`` are read-only, so nothing compiled at run
  time is kept for the next cold start (a missing ``.pyc`` costs a compile every time);
- boto3 precompiled OUTSIDE the layer (``.aws-sam/runtime-boto3``), as the runtime ships it.

Each function's ``import app; import boto3`` runs in a fresh interpreter, interleaved round by
round with a baseline interpreter that only does ``import boto3`` (what any Python function
that calls AWS pays); the figure is the child's CPU time (user + system, from ``wait4``:
wall time on a shared machine measures the neighbours) and its peak RSS. The ratio is PAIRED:
each round's function over the same round's baseline, then the median over the rounds, with
the spread of those ratios (25th-75th percentile) beside it: on a shared 2-core machine the
baseline alone drifts 180-230 ms from minute to minute, and unpaired medians moved a function's
ratio by 0.1 from one run to the next.

When valgrind is installed, a second, deterministic figure sits beside it: the instructions
each child executes (``valgrind --tool=cachegrind --cache-sim=no``, one run each, within ~0.5 %
from run to run), as a ratio to the baseline's. It counts no system time and no cache misses,
so it is not what Lambda bills, but it does not move with the neighbours: a lever that changes
it is real. The ratios are printed beside issue 11's limits: CPU 1.20 (target 1.10), RSS 1.15,
and the layer's unzipped size beside 8 MB; the verdict is on the CPU ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROUNDS = 21
CPU_LIMIT, CPU_TARGET, RSS_LIMIT, LAYER_LIMIT_MB = 1.20, 1.10, 1.15, 8.0
# The project root: the nearest parent holding template.yaml (wherever this module lives).
ROOT = next(p for p in [*Path(__file__).resolve().parents, Path.cwd()] if (p / "template.yaml").is_file())
BUILD = ROOT / ".aws-sam" / "build"
BASELINE = "baseline: import boto3"

# The child: the runtime's path (function code, layer, the runtime's boto3), then the body.
CHILD = """
import sys
sys.path[:0] = {path!r}
{body}
"""


@dataclass(frozen=True)
class Sample:
    cpu_seconds: float
    max_rss_kb: int


def find_python313() -> str:
    """The runtime's interpreter: python3.13 on PATH, or pyenv's 3.13 when the shim needs telling."""
    candidates: list[dict[str, str]] = [dict(os.environ)]
    pyenv = shutil.which("pyenv")
    if pyenv:
        versions = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True, check=False)
        for version in reversed([v for v in versions.stdout.split() if v.startswith("3.13")]):
            candidates.append({**os.environ, "PYENV_VERSION": version})
    for env in candidates:
        found = subprocess.run(
            ["python3.13", "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if found.returncode == 0:
            return found.stdout.strip()
    raise SystemExit("bench_coldstart: python3.13 (the Lambda runtime's Python) is not installed")


def run_child(python: str, body: str, path: list[str], env: dict[str, str]) -> Sample:
    code = CHILD.format(path=path, body=body)
    child = subprocess.Popen(
        [python, "-B", "-I", "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix every child's peak RSS).
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:
        raise RuntimeError(f"the cold start of {body!r} failed:\n{stderr}")
    return Sample(usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def instructions(python: str, body: str, path: list[str], env: dict[str, str]) -> int | None:
    """The instructions the child executes (valgrind's "I refs"), or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    code = CHILD.format(path=path, body=body)
    done = subprocess.run(
        [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         python, "-B", "-I", "-c", code],
        env={**env, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind could not count {body!r}:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def paired(runs: list[Sample], base: list[Sample], value: str) -> list[float]:
    """Each round's figure over the same round's baseline (a round the neighbours slowed down
    slows both)."""
    return [getattr(a, value) / getattr(b, value) for a, b in zip(runs, base, strict=True)]


def spread(ratios: list[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles (the middle half of the rounds)."""
    if len(ratios) < 2:
        return ratios[0], ratios[0]
    quartiles = statistics.quantiles(ratios, n=4, method="inclusive")
    return quartiles[0], quartiles[2]


def layer_dir() -> Path:
    built = BUILD / "CommonLayer" / "python"
    host_view = ROOT / ".aws-sam" / "host-view" / "CommonLayer" / "python"
    if platform.machine() not in {"aarch64", "arm64"}:
        return host_view
    return built


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def subjects(extra_imports: list[str]) -> dict[str, tuple[str, list[str]]]:
    layer = str(layer_dir())
    boto3_dir = str(ROOT / ".aws-sam" / "runtime-boto3")
    found: dict[str, tuple[str, list[str]]] = {BASELINE: ("import boto3", [boto3_dir])}
    for function in sorted(BUILD.glob("*Function")):
        # The handler module, then boto3 as its first AWS call will: what a cold invocation pays.
        found[function.name.removesuffix("Function")] = (
            "import app\nimport boto3",
            [str(function), layer, boto3_dir],
        )
    for module in extra_imports:
        found[f"+ {module}"] = (f"import {module}\nimport boto3", [layer, boto3_dir])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proxymx_tools.bench_coldstart", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--no-instructions", action="store_true", help="skip valgrind's instruction count")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        help="also time MODULE + boto3 (e.g. a dependency)",
    )
    args = parser.parse_args(argv)
    layer = layer_dir()
    if not (BUILD / "CommonLayer" / "python").is_dir() or not layer.is_dir():
        print("bench_coldstart: no built artifacts: run `make build` first", file=sys.stderr)
        return 2
    python = find_python313()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "proxymx",
        "POWERTOOLS_METRICS_NAMESPACE": "Proxymx",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
    }
    chosen = subjects(args.imports)
    names = list(chosen)
    for name in names:  # warm the page cache once, so that round 1 is not an outlier
        run_child(python, *chosen[name], env)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:  # rotate the order: drift hits every subject
            samples[name].append(run_child(python, *chosen[name], env))
    counted: dict[str, int | None] = {name: None for name in names}
    if not args.no_instructions:
        for name in names:
            counted[name] = instructions(python, *chosen[name], env)
    print(table(samples, args.rounds, python, size_mb(BUILD / "CommonLayer" / "python"), counted))
    over = [
        name
        for name in names
        if name != BASELINE
        and statistics.median(paired(samples[name], samples[BASELINE], "cpu_seconds")) > CPU_LIMIT
    ]
    return 1 if over else 0


def table(
    samples: dict[str, list[Sample]],
    rounds: int,
    python: str,
    layer_mb: float,
    counted: dict[str, int | None] | None = None,
) -> str:
    base = samples[BASELINE]
    counted = counted or {}
    base_instructions = counted.get(BASELINE)
    version = subprocess.run([python, "-V"], capture_output=True, text=True, check=False).stdout.strip()
    lines = [
        f"proxymx bench: cold start the Lambda way ({version} -B, .aws-sam/build artifacts, "
        f"boto3 precompiled outside the layer), {rounds} interleaved rounds; x boto3 = median of "
        "each round's ratio to the same round's baseline, [25th-75th percentile]",
        "",
        f"{'import app; import boto3':32} {'CPU ms':>6} {'x boto3':>7} {'[spread]':>13} {'<=1.20':>6} "
        f"{'RSS MB':>6} {'x boto3':>7} {'<=1.15':>6} {'instr x':>7}",
        "-" * 101,
    ]
    for name, runs in samples.items():
        cpu = statistics.median(s.cpu_seconds for s in runs)
        rss = statistics.median(s.max_rss_kb for s in runs)
        cpu_ratios = paired(runs, base, "cpu_seconds")
        cpu_ratio = statistics.median(cpu_ratios)
        low, high = spread(cpu_ratios)
        rss_ratio = statistics.median(paired(runs, base, "max_rss_kb"))
        if name == BASELINE:
            cpu_verdict = rss_verdict = ""
        else:
            cpu_verdict = "ok" if cpu_ratio <= CPU_LIMIT else "OVER"
            rss_verdict = "ok" if rss_ratio <= RSS_LIMIT else "OVER"
        mine = counted.get(name)
        instr = f"{mine / base_instructions:7.3f}" if mine and base_instructions else f"{'n/a':>7}"
        lines.append(
            f"{name:32} {cpu * 1000:6.0f} {cpu_ratio:7.2f} {f'[{low:.2f}-{high:.2f}]':>13} {cpu_verdict:>6} "
            f"{rss / 1024:6.1f} {rss_ratio:7.2f} {rss_verdict:>6} {instr}"
        )
    layer_verdict = "ok" if layer_mb <= LAYER_LIMIT_MB else "OVER"
    lines += [
        "",
        f"limits (issue 11): CPU <= {CPU_LIMIT:.2f}x boto3 (target {CPU_TARGET:.2f}x), "
        f"peak RSS <= {RSS_LIMIT:.2f}x; instr x: valgrind's instruction count, one run, deterministic",
        f"layer (.aws-sam/build/CommonLayer/python, unzipped): {layer_mb:.1f} MB, "
        f"limit {LAYER_LIMIT_MB:.0f} MB: {layer_verdict}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
