"""Four handlers, one shape: the same decorator stack, one ``process(event, settings, clients)``
that makes one call to the shared plumbing (proxymx.handler.handle). Read statically."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support import ROOT

HANDLERS = sorted((ROOT / "functions").glob("*/app.py"))


def function(tree: ast.Module, name: str) -> ast.FunctionDef:
    return next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name)


def test_there_are_four_handlers() -> None:
    assert [path.parent.name for path in HANDLERS] == [
        "check_outcome",
        "configure_instance",
        "enable_proxy_protocol",
        "reconcile",
    ]


@pytest.mark.parametrize("path", HANDLERS, ids=lambda path: path.parent.name)
def test_the_decorators_are_the_same_stack(path: Path) -> None:
    handler = function(ast.parse(path.read_text(encoding="utf-8")), "lambda_handler")
    inject, log_metrics = handler.decorator_list
    # Logger.inject_lambda_context, with a correlation id and a fresh state per invocation
    assert isinstance(inject, ast.Call)
    assert ast.unparse(inject.func) == "logger.inject_lambda_context"
    keywords = {keyword.arg: ast.unparse(keyword.value) for keyword in inject.keywords}
    assert keywords["clear_state"] == "True"
    assert keywords["correlation_id_path"]
    # then Metrics.log_metrics, which flushes even when the handler raises
    assert ast.unparse(log_metrics) == "metrics.log_metrics"
    # and the body is one call: process(event, settings, clients[, context])
    (statement,) = handler.body
    assert isinstance(statement, ast.Return) and isinstance(statement.value, ast.Call)
    assert ast.unparse(statement.value).startswith("process(event, settings, clients")


@pytest.mark.parametrize("path", HANDLERS, ids=lambda path: path.parent.name)
def test_process_takes_settings_and_clients_and_makes_one_call_to_handle(path: Path) -> None:
    process = function(ast.parse(path.read_text(encoding="utf-8")), "process")
    arguments = [argument.arg for argument in process.args.args]
    assert arguments[:3] == ["event", "settings", "clients"]
    assert all(ast.unparse(default) == "None" for default in process.args.defaults)
    calls = [
        node
        for node in ast.walk(process)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "handle"
    ]
    assert len(calls) == 1
    assert {keyword.arg for keyword in calls[0].keywords} == {"settings", "clients"}
