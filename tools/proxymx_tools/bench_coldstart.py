"""``make bench`` (second table): what each handler costs at cold start.

A Lambda cold start pays for importing the handler module. Each function of template.yaml is
imported in a fresh interpreter (the same way the runtime does: the handler file's directory
and the layer on ``sys.path``) followed by boto3 (the handlers import it lazily, at their first
AWS call), several rounds interleaved with a baseline interpreter that only imports boto3 —
which any Python function that calls AWS pays. The ratio is then what proxymx's own code and
Powertools add to the unavoidable. The
table shows the median import time and peak memory (RSS) of each, and their ratio to the
baseline, measured side by side in one run (these machines are shared: absolute figures move,
ratios much less).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from proxymx_tools import template as tpl

ROUNDS = 7
# Where the runtime package lives (the layer's source): on sys.path as /opt/python is in Lambda.
LAYER = Path(__file__).resolve().parents[2] / "layers" / "common"

# Runs in the child: import the module, report the import's wall time and the peak RSS.
PROBE = """
import json, resource, sys, time
started = time.perf_counter()
{body}
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def _measure(body: str, extra_path: list[str], env: dict[str, str]) -> dict[str, float]:
    code = PROBE.format(body=body)
    python_path = os.pathsep.join([*extra_path, str(LAYER)])
    done = subprocess.run(
        [sys.executable, "-X", "frozen_modules=on", "-c", code],
        env={**env, "PYTHONPATH": python_path},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    template = tpl.load_template()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "proxymx",
        "POWERTOOLS_METRICS_NAMESPACE": "Proxymx",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    subjects: dict[str, tuple[str, list[str]]] = {"baseline: import boto3": ("import boto3", [])}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        entry = tpl.function_entry(template, logical_id)
        # The handler module, then boto3 as its first AWS call will: what a cold invocation pays.
        subjects[logical_id] = (f"import {entry.module}\nimport boto3", [str(entry.code_dir)])
    # Warm the file system cache once so that round 1 is not an outlier for whoever goes first.
    for body, path in subjects.values():
        _measure(body, path, env)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in subjects}
    names = list(subjects)
    for round_number in range(ROUNDS):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:  # rotate the order: drift hits every subject
            body, path = subjects[name]
            samples[name].append(_measure(body, path, env))
    base_time = statistics.median(s["seconds"] for s in samples[names[0]])
    base_rss = statistics.median(s["max_rss_kb"] for s in samples[names[0]])
    version = sys.version.split()[0]
    print(f"\nproxymx bench: cold start (handler + boto3), {ROUNDS} interleaved rounds, median, {version}")
    print(f"\n{'imported':34} {'ms':>8} {'x boto3':>8} {'RSS MB':>8} {'x boto3':>8}")
    print("-" * 70)
    for name in names:
        seconds = statistics.median(s["seconds"] for s in samples[name])
        rss = statistics.median(s["max_rss_kb"] for s in samples[name])
        ratios = f"{seconds / base_time:8.2f} {rss / 1024:8.1f} {rss / base_rss:8.2f}"
        print(f"{name:34} {seconds * 1000:8.0f} {ratios}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
