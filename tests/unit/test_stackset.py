"""What would break a StackSet deployment of template.yaml (many accounts x many regions)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from proxymx_tools.orgtemplate import SAM_TRANSFORM, transform_packaged
from proxymx_tools.template import load_template

TEMPLATE = load_template()

# Physical-name properties: a literal here collides between two stacks of one account and region
# (or, for IAM and S3, of one account / of all accounts).
NAME_PROPERTIES = {
    "Name",
    "LogGroupName",
    "TrailName",
    "QueueName",
    "TopicName",
    "FunctionName",
    "LayerName",
    "DashboardName",
    "AlarmName",
}
# Globally scoped names: unique per account across regions (IAM) or across all accounts (S3).
# A stack name does not make them unique in a StackSet (same stack name in every region), so none.
GLOBAL_NAME_PROPERTIES = {"RoleName", "PolicyName", "ManagedPolicyName", "BucketName", "InstanceProfileName"}


def _packaged() -> dict[str, Any]:
    """template.yaml as `sam package` leaves it: code locations are S3 URIs."""
    packaged = copy.deepcopy(TEMPLATE)
    for resource in packaged["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = f"s3://proxymx-artifacts/{key.lower()}.zip"
    return packaged


def _named_resources(template: dict[str, Any], properties: set[str]) -> list[tuple[str, str, Any]]:
    return [
        (logical_id, key, value)
        for logical_id, resource in template["Resources"].items()
        if not resource["Type"].startswith("AWS::Serverless::")
        for key, value in (resource.get("Properties") or {}).items()
        if key in properties
    ]


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return transform_packaged(_packaged(), regional_bucket_prefix="proxymx-artifacts")


def test_the_only_macro_is_the_sam_transform_and_the_shipped_template_has_none(
    transformed: dict[str, Any],
) -> None:
    # Given template.yaml (service-managed StackSets refuse every macro)
    assert TEMPLATE["Transform"] == SAM_TRANSFORM
    # When it is packaged and transformed as the organization deployment does
    # Then no macro and no SAM resource type is left
    assert "Transform" not in transformed
    assert not [r for r in transformed["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]
    assert "Fn::Transform" not in json.dumps(transformed)


def test_every_physical_name_is_per_stack_and_none_is_global(transformed: dict[str, Any]) -> None:
    for template in (TEMPLATE, transformed):
        # Given every name-like property of every resource
        for logical_id, key, value in _named_resources(template, NAME_PROPERTIES):
            # Then it carries the stack name (unique per account and region)
            assert "${AWS::StackName}" in json.dumps(value) or _is_reference(value), (logical_id, key)
        # And no globally scoped name is set at all
        assert _named_resources(template, GLOBAL_NAME_PROPERTIES) == []


def _is_reference(value: Any) -> bool:
    """A Ref/GetAtt names another resource of the same stack (e.g. FunctionName of a mapping)."""
    return isinstance(value, dict) and bool({"Ref", "Fn::GetAtt"} & set(value))


def test_nothing_names_an_account_or_a_region(transformed: dict[str, Any]) -> None:
    text = json.dumps(transformed)
    # Given the shipped template, with the sample pattern of a parameter's AllowedPattern removed
    text = text.replace("[0-9]{12}", "")
    # Then no account id and no region name is written into it
    assert re.findall(r"\b\d{12}\b", text) == []
    assert re.findall(r"\b(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d\b", text) == []
    # And the only literal ARNs are AWS managed policies (partition aws: see proxymx_tools.orgtemplate)
    literal_arns = set(re.findall(r'"(arn:aws:[^"]*)"', text))
    assert literal_arns and all(arn.startswith("arn:aws:iam::aws:policy/") for arn in literal_arns)


def test_code_is_read_from_the_bucket_of_each_region(transformed: dict[str, Any]) -> None:
    # Given the functions and the layer of the shipped template
    code = [
        resource["Properties"].get("Code") or resource["Properties"].get("Content")
        for resource in transformed["Resources"].values()
        if resource["Type"] in ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion")
    ]
    # Then each reads from PREFIX-<its own region> (Lambda reads code only from its region)
    assert len(code) == 5
    assert {json.dumps(c["S3Bucket"]) for c in code} == {
        json.dumps({"Fn::Sub": "proxymx-artifacts-${AWS::Region}"})
    }


def test_only_the_unnamed_iam_capability_is_needed(transformed: dict[str, Any]) -> None:
    # Given the IAM resources (CAPABILITY_NAMED_IAM would be needed for named ones)
    roles = [r for r in transformed["Resources"].values() if r["Type"].startswith("AWS::IAM::")]
    # Then there are some (CAPABILITY_IAM), none of them named
    assert roles
    assert not [r for r in roles if "RoleName" in r["Properties"]]


def test_the_command_line_writes_the_shipped_template(tmp_path: Any) -> None:
    # Given a packaged template on disk
    import yaml
    from proxymx_tools.orgtemplate import main

    packaged = tmp_path / "packaged.yaml"
    packaged.write_text(yaml.safe_dump(_packaged()))
    out = tmp_path / "proxymx-org.json"
    # When the command line transforms it
    code = main([str(packaged), "--regional-bucket-prefix", "acme-artifacts", "-o", str(out)])
    # Then it writes plain CloudFormation reading code from the bucket of each region
    shipped = json.loads(out.read_text())
    assert code == 0 and "Transform" not in shipped
    assert '"Fn::Sub": "acme-artifacts-${AWS::Region}"' in json.dumps(shipped)


def test_an_unpackaged_template_is_refused_with_one_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given template.yaml itself (CodeUri are local directories, not S3)
    from proxymx_tools.orgtemplate import main
    from proxymx_tools.template import DEFAULT_TEMPLATE

    # When the command line is given it / Then it fails with the translator's reason, no traceback
    assert main([str(DEFAULT_TEMPLATE), "-o", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("orgtemplate: ") and "S3" in err
