"""DynamoDB adapter of the StateTable (template.yaml): small records keyed by one string.

Generic on purpose: the launch flow claims ``LAUNCH#<instance>#<destination>`` here (one command
per launch, :mod:`proxymx.launch.claims`), and other flows may keep their own records under other
key prefixes. Every write that matters is *conditional*: DynamoDB evaluates the condition and the
write atomically, so two concurrent writers can never both win (the basis of every "exactly once"
proxymx promises). A failed condition is an answer (``False``), not an error.

The table has one string hash key ``pk`` and TTL on the number attribute ``expires_at`` (epoch
seconds). DynamoDB deletes expired items only eventually (within days), so readers treat an
item whose ``expires_at`` is in the past as absent (conditions below compare it too).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from proxymx.errors import TransientAwsError, aws_errors, error_code, translate
from proxymx.frozen import frozen

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY = "pk"
TTL_ATTRIBUTE = "expires_at"
CONDITION_FAILED = "ConditionalCheckFailedException"
# BatchGetItem takes at most 100 keys; what it leaves unprocessed (throttling) is asked again.
BATCH_GET_KEYS = 100
BATCH_GET_ROUNDS = 5


def _serialize(values: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {name: serializer.serialize(value) for name, value in values.items()}


def _deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    plain = {name: deserializer.deserialize(value) for name, value in item.items()}
    # Numbers come back as Decimal; the records here only hold integers (epoch seconds).
    return {name: int(value) if _is_decimal(value) else value for name, value in plain.items()}


def _is_decimal(value: Any) -> bool:
    from decimal import Decimal

    return isinstance(value, Decimal)


@frozen
class Written:
    """The answer to a conditional write: ``won`` (this call wrote), else the record that stood in
    the way, read in the same atomic step (``ReturnValuesOnConditionCheckFailure``)."""

    won: bool
    existing: dict[str, Any] | None = None
    # The record as this write left it (``ReturnValues=ALL_NEW``), for updates that won.
    item: dict[str, Any] | None = None


class StateTable:
    """put_if_absent / update_if / get / delete on one table (the only DynamoDB boto3 code)."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    def get(self, key: str, *, now: int) -> dict[str, Any] | None:
        """The record (strongly consistent read), or None when absent or expired."""
        try:
            response = self.client.get_item(
                TableName=self.table_name, Key=_serialize({KEY: key}), ConsistentRead=True
            )
        except aws_errors() as exc:
            raise translate(exc, "GetItem") from exc
        item = response.get("Item")
        if not item:
            return None
        record = _deserialize(item)
        if int(record.get(TTL_ATTRIBUTE, now + 1)) <= now:
            return None
        return record

    def get_many(self, keys: Iterable[str], *, now: int) -> dict[str, dict[str, Any]]:
        """The live records of ``keys`` (absent and expired ones left out), read with
        BatchGetItem: 100 keys a call, unprocessed keys asked again (bounded), strongly consistent.
        For reports over many units (``proxymx audit``), not for a decision that writes."""
        wanted = sorted(set(keys))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            pending: list[dict[str, Any]] = [
                _serialize({KEY: k}) for k in wanted[start : start + BATCH_GET_KEYS]
            ]
            for round_ in range(BATCH_GET_ROUNDS):
                if not pending:
                    break
                if round_:
                    time.sleep(0.05 * 2**round_)  # what DynamoDB left over was throttled: back off
                try:
                    response = self.client.batch_get_item(
                        RequestItems={self.table_name: {"Keys": pending, "ConsistentRead": True}}
                    )
                except aws_errors() as exc:
                    raise translate(exc, "BatchGetItem") from exc
                for item in (response.get("Responses") or {}).get(self.table_name, []):
                    record = _deserialize(item)
                    if int(record.get(TTL_ATTRIBUTE, now + 1)) > now:
                        found[str(record[KEY])] = record
                unprocessed: dict[str, Any] = dict(response.get("UnprocessedKeys") or {})
                pending = list((unprocessed.get(self.table_name) or {}).get("Keys", []))
            if pending:
                raise TransientAwsError(
                    f"BatchGetItem: {len(pending)} key(s) still unprocessed after {BATCH_GET_ROUNDS} rounds"
                )
        return found

    def scan_prefix(self, prefix: str, *, now: int) -> list[dict[str, Any]]:
        """The live records whose key starts with ``prefix`` (a paged Scan: for an operator's
        listing, ``proxymx cutover list``; never on a function's path), sorted by key."""
        found: list[dict[str, Any]] = []
        try:
            pages = self.client.get_paginator("scan").paginate(
                TableName=self.table_name,
                FilterExpression="begins_with(#pk, :prefix)",
                ExpressionAttributeNames={"#pk": KEY},
                ExpressionAttributeValues=_serialize({":prefix": prefix}),
                ConsistentRead=True,
            )
            for page in pages:
                for item in page.get("Items", []):
                    record = _deserialize(item)
                    if int(record.get(TTL_ATTRIBUTE, now + 1)) > now:
                        found.append(record)
        except aws_errors() as exc:
            raise translate(exc, "Scan") from exc
        return sorted(found, key=lambda r: str(r[KEY]))

    def put_if_absent(
        self,
        key: str,
        values: Mapping[str, Any],
        *,
        now: int,
        expires_at: int,
        or_if: str = "",
        names: Mapping[str, str] | None = None,
        bindings: Mapping[str, Any] | None = None,
    ) -> Written:
        """Write the record unless one exists and has not expired (or ``or_if`` holds on it)."""
        condition = f"attribute_not_exists({KEY}) OR {TTL_ATTRIBUTE} <= :proxymx_now"
        if or_if:
            condition = f"{condition} OR ({or_if})"
        item = {**values, KEY: key, TTL_ATTRIBUTE: expires_at}
        return self._conditional(
            "PutItem",
            Item=_serialize(item),
            ConditionExpression=condition,
            names=names,
            bindings={**(bindings or {}), ":proxymx_now": now},
        )

    def update_if(
        self,
        key: str,
        values: Mapping[str, Any],
        *,
        condition: str,
        names: Mapping[str, str] | None = None,
        bindings: Mapping[str, Any] | None = None,
    ) -> Written:
        """Set ``values`` on the record when ``condition`` holds."""
        sets = {f"#proxymx_set{i}": name for i, name in enumerate(values)}
        assignments = ", ".join(f"{alias} = :proxymx_set{i}" for i, alias in enumerate(sets))
        set_bindings = {f":proxymx_set{i}": value for i, value in enumerate(values.values())}
        return self._conditional(
            "UpdateItem",
            Key=_serialize({KEY: key}),
            UpdateExpression=f"SET {assignments}",
            ConditionExpression=condition,
            names={**sets, **(names or {})},
            bindings={**set_bindings, **(bindings or {})},
        )

    def update_expression_if(
        self,
        key: str,
        expression: str,
        *,
        condition: str,
        names: Mapping[str, str] | None = None,
        bindings: Mapping[str, Any] | None = None,
    ) -> Written:
        """Any update expression (``ADD`` to a set or a counter, ``SET`` on a map entry) when
        ``condition`` holds; the record as left (``item``) when it won. UpdateItem creates the
        record when absent, so ``condition`` decides whether that is allowed."""
        return self._conditional(
            "UpdateItem",
            Key=_serialize({KEY: key}),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ReturnValues="ALL_NEW",
            names=names,
            bindings=bindings,
        )

    def delete(
        self,
        key: str,
        *,
        condition: str = "",
        names: Mapping[str, str] | None = None,
        bindings: Mapping[str, Any] | None = None,
    ) -> Written:
        """Delete the record (when ``condition`` holds, if given)."""
        extra: dict[str, Any] = {"ConditionExpression": condition} if condition else {}
        return self._conditional(
            "DeleteItem", Key=_serialize({KEY: key}), names=names, bindings=bindings, **extra
        )

    def _conditional(
        self,
        operation: str,
        *,
        names: Mapping[str, str] | None,
        bindings: Mapping[str, Any] | None,
        **request: Any,
    ) -> Written:
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        if bindings:
            request["ExpressionAttributeValues"] = _serialize(bindings)
        calls: dict[str, Callable[..., Any]] = {
            "PutItem": self.client.put_item,
            "UpdateItem": self.client.update_item,
            "DeleteItem": self.client.delete_item,
        }
        call = calls[operation]
        if "ConditionExpression" in request:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            response = call(TableName=self.table_name, **request)
        except aws_errors() as exc:
            if error_code(exc) == CONDITION_FAILED:
                old = getattr(exc, "response", {}).get("Item")
                return Written(False, _deserialize(old) if old else None)
            raise translate(exc, operation) from exc
        new = response.get("Attributes") if request.get("ReturnValues") == "ALL_NEW" else None
        return Written(True, item=_deserialize(new) if new else None)
