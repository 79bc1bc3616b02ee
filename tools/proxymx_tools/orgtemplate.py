"""A StackSet-ready template: the packaged SAM template, transformed into plain CloudFormation.

Why: StackSets with service-managed permissions (AWS Organizations, automatic deployment to new
accounts) do not support macros, and the ``AWS::Serverless`` transform is one (CreateStackSet,
``Capabilities``: "StackSets with service-managed permissions do not currently support the use of
macros"). Self-managed StackSets accept it with ``CAPABILITY_AUTO_EXPAND``, but an organization
wants service-managed ones, so proxymx ships the transformed template.

Input: the output of ``sam package`` (code already in S3). Lambda reads code only from a bucket
in the function's own region, so ``--regional-bucket-prefix P`` rewrites every code location to
the bucket ``P-<region>`` (copy the packaged objects to one such bucket per target region, same
keys). The transform resolves no account or region: the result stays parameterised; only the
partition of AWS managed policy ARNs comes from ``--region`` (use a region of your partition).

    python -m proxymx_tools.orgtemplate packaged.yaml --regional-bucket-prefix my-artifacts \\
        -o proxymx-org.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

from proxymx_tools.template import load_template

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"


class _NoManagedPolicyLookups:
    """The template names no managed policy by name: nothing to look up in IAM (offline)."""

    def load(self) -> dict[str, str]:
        return {}


def _code_locations(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The S3 locations of every function's code and layer's content, after the transform."""
    found = []
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Lambda::Function" and "S3Bucket" in props.get("Code", {}):
            found.append(props["Code"])
        elif resource.get("Type") == "AWS::Lambda::LayerVersion" and "S3Bucket" in props.get("Content", {}):
            found.append(props["Content"])
    return found


def transform_packaged(
    packaged: dict[str, Any], *, region: str = "us-east-1", regional_bucket_prefix: str = ""
) -> dict[str, Any]:
    """The plain CloudFormation of a packaged template (no ``Transform`` left)."""
    from samtranslator.translator.transform import transform

    if packaged.get("Transform") != SAM_TRANSFORM:
        raise ValueError(f"expected Transform {SAM_TRANSFORM}, found {packaged.get('Transform')!r}")
    previous = os.environ.get("AWS_DEFAULT_REGION")
    # The translator wants a region for pseudo parameters; it writes none into the output.
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        # The translator edits its input: give it a copy (load_template's result is cached).
        result: dict[str, Any] = transform(copy.deepcopy(packaged), {}, _NoManagedPolicyLookups())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    if regional_bucket_prefix:
        for location in _code_locations(result):
            location["S3Bucket"] = {"Fn::Sub": f"{regional_bucket_prefix}-${{AWS::Region}}"}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proxymx_tools.orgtemplate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("packaged", type=Path, help="the template written by sam package")
    parser.add_argument("--regional-bucket-prefix", default="", help="code from the bucket PREFIX-<region>")
    parser.add_argument("--region", default="us-east-1", help="any region of the target partition")
    parser.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    args = parser.parse_args(argv)
    try:
        result = transform_packaged(
            load_template(args.packaged),
            region=args.region,
            regional_bucket_prefix=args.regional_bucket_prefix,
        )
    except Exception as exc:  # the translator raises its own exception types; one line for the user
        sys.stderr.write(f"orgtemplate: {exc}\n")
        return 1
    text = json.dumps(result, separators=(",", ":"), sort_keys=True) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
