"""Mutation testing of the decision code (``make mutation``; issue 9, "keep it that way").

Why not mutmut: mutmut 3.8.1 (the current release) requires ``click>=8.4.2``, while aws-sam-cli
1.170.0 (``make lint``'s ``sam validate``) pins ``click==8.1.8``: one venv cannot hold both, and
the older mutmut 2 does not run on Python 3.11's AST without patches. So this is a tiny AST
mutator in the spirit of mutmut's operators, with no dependency:

- a string constant ``"s"`` -> ``"XXsXX"`` (docstrings, f-strings, log and exception messages and
  ``Literal[...]`` types are left alone: what they say is not a decision);
- a number ``n`` -> ``n + 1``; ``True`` <-> ``False``;
- ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``, ``in`` <-> ``not in``, ``is`` <-> ``is not``;
- ``and`` <-> ``or``; ``not x`` -> ``x``; ``+`` <-> ``-``, ``*`` <-> ``/``.

Decorators and annotations are not mutated (``frozen=True`` -> ``False`` changes no decision).

Each mutant is compiled from the mutated AST and put in ``sys.modules`` under the module's name in
a forked child (the third-party imports are warmed up once in the parent), which then runs the
unit tests that import the module (``pytest -x``). A mutant survives when they all pass. The
unmutated module runs first and must pass. ``EQUIVALENT`` lists the mutants no test can kill
(the behaviour does not change), each with its reason; they are left out of the kill rate.

Usage: ``python -m proxymx_tools.mutation [--only PATH] [--timeout S]``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "common"


@dataclass(frozen=True)
class Target:
    path: str  # relative to the layer
    tests: tuple[str, ...]  # unit test files, relative to ROOT
    names: frozenset[str] | None = None  # top-level names to mutate; None: the whole module


TARGETS = (
    Target("proxymx/loadbalancer/plan.py", ("tests/unit/test_lb_plan.py",)),
    Target(
        "proxymx/launch/plan.py",
        (
            "tests/unit/test_launch_plan.py",
            "tests/unit/test_launch_decisions.py",
            "tests/unit/test_reconcile_decisions.py",
        ),
    ),
    # The decision parts: which statuses come back, what each counts, the batch's verdict.
    Target(
        "proxymx/launch/configure.py",
        (
            "tests/unit/test_launch_reports.py",
            "tests/unit/test_launch_decisions.py",
            "tests/unit/test_reconcile_decisions.py",
        ),
        frozenset({"RETRIED", "STATUS_METRICS", "LaunchOutcome", "LaunchBatchReport"}),
    ),
    Target(
        "proxymx/launch/outcome.py",
        ("tests/unit/test_launch_reports.py", "tests/unit/test_launch_decisions.py"),
        frozenset({"SHARED_OUTCOME", "OutcomeReport", "settled_status"}),
    ),
    Target(
        "proxymx/config.py",
        (
            "tests/unit/test_settings.py",
            "tests/unit/test_parameters.py",
            "tests/unit/test_shared_plumbing.py",
        ),
    ),
    Target(
        "proxymx/postfix_summary.py",
        ("tests/unit/test_postfix_summary.py", "tests/unit/test_readiness.py"),
    ),
)

# (module path, line, description) -> why the mutant cannot change behaviour.
_NOT_A_SUMMARY = (
    "read() passes every field: a PostfixConfigResult is built nowhere else, so the class default is unused"
)
EQUIVALENT: dict[tuple[str, int, str], str] = {
    ("proxymx/loadbalancer/plan.py", 63, "'Z' -> 'XXZXX'"): (
        "Python 3.11+ datetime.fromisoformat reads a 'Z' suffix itself; the replace only helps 3.10"
    ),
    ("proxymx/loadbalancer/plan.py", 100, "'' -> 'XXXX'"): (
        "a missing ProxyProtocol attribute: neither '' nor 'XXXX' is 'true'"
    ),
    ("proxymx/loadbalancer/plan.py", 229, "'' -> 'XXXX'"): (
        "a missing protocol: neither '' nor 'XXXX' is TCP or TLS"
    ),
    ("proxymx/launch/plan.py", 225, "'' -> 'XXXX'"): (
        "no invocation: neither '' nor 'XXXX' holds a summary line"
    ),
    ("proxymx/postfix_summary.py", 50, "'configure' -> 'XXconfigureXX'"): _NOT_A_SUMMARY,
    ("proxymx/postfix_summary.py", 54, "1 -> 2"): _NOT_A_SUMMARY,
    ("proxymx/postfix_summary.py", 55, "False -> True"): _NOT_A_SUMMARY,
    ("proxymx/postfix_summary.py", 59, "False -> True"): _NOT_A_SUMMARY,
    ("proxymx/postfix_summary.py", 60, "False -> True"): _NOT_A_SUMMARY,
    ("proxymx/postfix_summary.py", 61, "False -> True"): _NOT_A_SUMMARY,
    ("proxymx/launch/configure.py", 113, "0 -> 1"): (
        "LaunchBatchReport.conflicts is neither read nor written anywhere (a dead field)"
    ),
    ("proxymx/config.py", 26, "'T' -> 'XXTXX'"): "a TypeVar's name shows only in its repr",
    ("proxymx/postfix_summary.py", 72, "64 -> 65"): (
        "postfix_version's pattern already caps it at 64 characters (1 + {0,63})"
    ),
}

SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.And: ast.Or,
    ast.Or: ast.And,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
}
LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})


@dataclass(frozen=True)
class Mutant:
    path: str
    index: int  # the site's position in the walk
    line: int
    description: str


def _name_of(statement: ast.stmt) -> str | None:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return statement.name
    if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
        return statement.targets[0].id
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return statement.target.id
    return None


def _is_message(call: ast.Call) -> bool:
    """A log call, or an exception being built: its text is a message, not a decision."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in LOG_METHODS:
        return True
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return name.endswith(("Error", "Exception", "Failed", "Refused", "Event", "Unavailable"))


def _sites(tree: ast.Module, names: frozenset[str] | None) -> Iterator[ast.AST]:
    """Every mutable node, in a fixed order (the same for listing and for applying)."""

    def walk(node: ast.AST) -> Iterator[ast.AST]:
        if isinstance(node, ast.JoinedStr):
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return  # a docstring
        if isinstance(node, ast.Call) and _is_message(node):
            return
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "Literal"
        ):
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float, str)):
            yield node
        if isinstance(node, ast.Compare):
            yield from (node for op in node.ops if type(op) in SWAPS)
        if isinstance(node, (ast.BoolOp, ast.BinOp)) and type(node.op) in SWAPS:
            yield node
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node
        for field, value in ast.iter_fields(node):
            # Types and decorators (``@dataclass(frozen=True)``) configure, they do not decide.
            if field in ("annotation", "returns", "type_comment", "decorator_list"):
                continue
            children = value if isinstance(value, list) else [value]
            for child in children:
                if isinstance(child, ast.AST):
                    yield from walk(child)

    for statement in tree.body:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            continue
        if names is not None and _name_of(statement) not in names:
            continue
        yield from walk(statement)


def _describe(node: ast.AST, occurrence: int) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float, str)):
        return f"{node.value!r} -> {_mutated_constant(node.value)!r}"
    if isinstance(node, ast.Compare):
        op = node.ops[occurrence]
        return f"{type(op).__name__} -> {SWAPS[type(op)].__name__}"
    if isinstance(node, (ast.BoolOp, ast.BinOp)):
        return f"{type(node.op).__name__} -> {SWAPS[type(node.op)].__name__}"
    return "not x -> x"


def _mutated_constant(value: bool | int | float | str) -> bool | int | float | str:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return f"XX{value}XX"


def mutants(target: Target) -> list[Mutant]:
    source = (LAYER / target.path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    found = []
    seen: dict[int, int] = {}
    for index, node in enumerate(_sites(tree, target.names)):
        occurrence = seen.get(id(node), 0)
        seen[id(node)] = occurrence + 1
        found.append(Mutant(target.path, index, getattr(node, "lineno", 0), _describe(node, occurrence)))
    return found


def mutated_code(target: Target, index: int | None) -> CodeType:
    """The module's code object with the ``index``-th site mutated (None: unmutated)."""
    path = LAYER / target.path
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if index is not None:
        tree = copy.deepcopy(tree)
        seen: dict[int, int] = {}
        for position, node in enumerate(_sites(tree, target.names)):
            occurrence = seen.get(id(node), 0)
            seen[id(node)] = occurrence + 1
            if position == index:
                _mutate(tree, node, occurrence)
                break
        ast.fix_missing_locations(tree)
    return compile(tree, str(path), "exec")


def _mutate(tree: ast.Module, node: ast.AST, occurrence: int) -> None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float, str)):
        node.value = _mutated_constant(node.value)
    elif isinstance(node, ast.Compare):
        node.ops[occurrence] = SWAPS[type(node.ops[occurrence])]()
    elif isinstance(node, (ast.BoolOp, ast.BinOp)):
        node.op = SWAPS[type(node.op)]()
    elif isinstance(node, ast.UnaryOp):
        for parent in ast.walk(tree):
            for field, value in ast.iter_fields(parent):
                if value is node:
                    setattr(parent, field, node.operand)
                elif isinstance(value, list) and node in value:
                    value[value.index(node)] = node.operand


def _module_name(target: Target) -> str:
    return target.path.removesuffix(".py").replace("/", ".")


def run_one(target: Target, index: int | None, timeout: float) -> int:
    """Fork; in the child, install the (mutated) module and run its unit tests. pytest's code
    (0: every test passed, so the mutant survived), or -1 on timeout."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            name = _module_name(target)
            importlib.import_module(name.rsplit(".", 1)[0])
            spec = importlib.util.spec_from_file_location(name, LAYER / target.path)
            assert spec is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            exec(mutated_code(target, index), module.__dict__)  # noqa: S102 - the point of the tool
            import pytest

            os.chdir(ROOT)
            args = [*target.tests, "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-W", "ignore"]
            code = int(pytest.main(args))
        except BaseException:  # a mutant that cannot even load is killed
            code = 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -1
        time.sleep(0.02)


def _warm_up() -> None:
    """Import the heavy third-party packages once, so that each fork starts warm. No proxymx
    module is imported here: the child must import the mutant first."""
    for name in (
        "pytest",
        "pydantic",
        "boto3",
        "botocore.session",
        "aws_lambda_powertools",
        "hypothesis",
        "yaml",
    ):
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="proxymx-mutation", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="one target (its path under layers/common)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    options = parser.parse_args(argv)
    sys.path[:0] = [str(LAYER), str(ROOT / "tests")]
    _warm_up()
    targets = [t for t in TARGETS if options.only in (None, t.path)]
    totals = [0, 0, 0]  # killed, survived, equivalent
    lines = []
    for target in targets:
        if run_one(target, None, options.timeout) != 0:
            sys.stdout.write(f"{target.path}: the unit tests fail WITHOUT a mutant: fix them first\n")
            return 1
        killed = survived = equivalent = unloadable = 0
        for mutant in mutants(target):
            code = run_one(target, mutant.index, options.timeout)
            key = (mutant.path, mutant.line, mutant.description)
            if code == 0 and key in EQUIVALENT:
                equivalent += 1
                sys.stdout.write(
                    f"  equivalent {mutant.path}:{mutant.line}: {mutant.description} ({EQUIVALENT[key]})\n"
                )
            elif code == 0:
                survived += 1
                sys.stdout.write(f"  SURVIVED   {mutant.path}:{mutant.line}: {mutant.description}\n")
            else:
                killed += 1
                # pytest says 1 when a test failed; anything else: the mutant broke the module's
                # load or the run (still killed: nothing could use it), or timed out (-1)
                unloadable += code != 1
                if key in EQUIVALENT:
                    sys.stdout.write(f"  killed, yet listed as equivalent (remove it): {key}\n")
            sys.stdout.flush()
        counted = killed + survived
        rate = 100.0 * killed / counted if counted else 100.0
        lines.append(
            f"{target.path:34s} {counted:4d} mutants  {killed:4d} killed ({unloadable:2d} at load)  "
            f"{survived:3d} survived  {equivalent:3d} equivalent  {rate:5.1f}%"
        )
        totals = [totals[0] + killed, totals[1] + survived, totals[2] + equivalent]
        sys.stdout.write(lines[-1] + "\n")
        sys.stdout.flush()
    counted = totals[0] + totals[1]
    rate = 100.0 * totals[0] / counted if counted else 100.0
    sys.stdout.write("\n" + "\n".join(lines) + "\n")
    sys.stdout.write(
        f"{'all':34s} {counted:4d} mutants  {totals[0]:4d} killed              {totals[1]:3d} survived  "
        f"{totals[2]:3d} equivalent  {rate:5.1f}%\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
