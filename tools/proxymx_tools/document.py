"""Run the SSM document's script on this machine, exactly as the SSM agent would.

The text comes from ``template.yaml`` (:func:`proxymx_tools.template.document_script`), never from a
copy. The agent's ``aws:runShellScript`` writes the commands to a file, runs it with ``sh -c``
in its own working directory and, for parameters declared with ``interpolationType: ENV_VAR``,
exports ``SSM_<Name>``; parameters not given take the document's defaults, and a value that
does not match the parameter's ``allowedPattern`` is refused before anything runs
(``InvalidParameters``). :func:`run_document` does the same, with ``MAIL_CONFIG`` pointing at
a private Postfix configuration directory.

Used by the data-plane tests, the embedded AWS (real command outcomes) and the demo.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxymx.postfix_summary import PostfixConfigResult, parse_summary

from proxymx_tools.template import document, document_script, load_template

# What the SSM agent's environment looks like under systemd.
AGENT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class InvalidDocumentParameters(ValueError):
    """What SendCommand answers with ``InvalidParameters``: unknown name or pattern mismatch."""


@dataclass(frozen=True)
class DocumentRun:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def summary(self) -> PostfixConfigResult | None:
        return parse_summary(self.stdout)


def document_parameters(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    params: dict[str, dict[str, Any]] = document(template).get("parameters", {})
    return params


def resolve_parameters(
    template: dict[str, Any], given: Mapping[str, str], *, check: bool = True
) -> dict[str, str]:
    """Defaults filled in, every value checked against its ``allowedPattern`` (as SSM does).

    ``check=False`` fills the defaults only (tests hand the script values SSM would refuse).
    """
    declared = document_parameters(template)
    unknown = sorted(set(given) - set(declared))
    if not check:
        defaults = {name: str(spec["default"]) for name, spec in declared.items() if "default" in spec}
        return {**defaults, **given}
    if unknown:
        raise InvalidDocumentParameters(f"unknown document parameter(s): {', '.join(unknown)}")
    resolved: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        elif "default" in spec:
            value = str(spec["default"])
        else:
            raise InvalidDocumentParameters(f"document parameter {name} is required")
        pattern = spec.get("allowedPattern")
        if pattern is not None and re.search(pattern, value) is None:
            raise InvalidDocumentParameters(f"{name}={value!r} does not match {pattern}")
        allowed = spec.get("allowedValues")
        if allowed is not None and value not in [str(v) for v in allowed]:
            raise InvalidDocumentParameters(f"{name}={value!r} is not one of {allowed}")
        resolved[name] = value
    return resolved


def run_document(
    parameters: dict[str, str],
    *,
    mail_config: Path,
    template_path: Path | None = None,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    validate: bool = True,
) -> DocumentRun:
    """Run the document's script with ``SSM_<Name>`` set and ``MAIL_CONFIG=mail_config``.

    ``env`` adds or overrides environment variables (e.g. a ``PATH`` without Postfix, or
    with a fake ``postconf`` first). ``validate=False`` skips the ``allowedPattern`` check
    so tests can prove that the script re-validates what it is given.
    """
    template = load_template(template_path)
    script = document_script(template)
    values = resolve_parameters(template, parameters, check=validate)
    run_env = {"PATH": AGENT_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
    run_env.update({f"SSM_{name}": value for name, value in values.items()})
    run_env["MAIL_CONFIG"] = str(mail_config)
    if env:
        run_env.update(env)
    with tempfile.TemporaryDirectory(prefix="proxymx-ssm-") as workdir:
        script_path = Path(workdir) / "_script.sh"
        script_path.write_text(script, encoding="utf-8")
        script_path.chmod(0o700)
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", str(script_path)],
                cwd=workdir,
                env=run_env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return DocumentRun(
                exit_code=124,
                stdout=_text(exc.stdout),
                stderr=_text(exc.stderr) + f"\nproxymx: timed out after {timeout}s",
                timed_out=True,
            )
    return DocumentRun(exit_code=done.returncode, stdout=done.stdout, stderr=done.stderr)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def main(argv: list[str] | None = None) -> int:
    """``python -m proxymx_tools.document MAIL_CONFIG [Name=Value ...]``: run it by hand."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m proxymx_tools.document MAIL_CONFIG [Name=Value ...]", file=sys.stderr)
        return 2
    params = dict(arg.split("=", 1) for arg in args[1:])
    run = run_document(params, mail_config=Path(args[0]), env={"PATH": os.environ.get("PATH", AGENT_PATH)})
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    return run.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
