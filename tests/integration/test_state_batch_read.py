"""StateTable.get_many: one BatchGetItem per 100 keys, expired records left out, and what DynamoDB
leaves unprocessed (throttling) asked again -- the audit reads every unit's cutover this way."""

from __future__ import annotations

from typing import Any

import pytest
from proxymx.aws import Clients
from proxymx.errors import TransientAwsError
from proxymx.state import StateTable
from proxymx_tools.embedded import STATE_TABLE_NAME
from proxymx_tools.recorder import CallRecorder

NOW = 1_900_000_000


def seed(table: StateTable, count: int) -> None:
    for n in range(count):
        expires = NOW - 1 if n % 10 == 0 else NOW + 3600  # every tenth already expired
        assert table.put_if_absent(
            f"CUTOVER#u{n:03d}", {"phase": "switching"}, now=NOW - 7200, expires_at=expires
        ).won


def test_250_keys_are_read_in_3_calls_and_expired_ones_are_absent(
    aws: Any, clients: Clients, calls: CallRecorder
) -> None:
    # Given 230 records, 23 of them expired (DynamoDB deletes them only eventually)
    table = StateTable(STATE_TABLE_NAME, clients.dynamodb)
    seed(table, 230)
    # When 250 keys are read (20 of them never written)
    found = table.get_many((f"CUTOVER#u{n:03d}" for n in range(250)), now=NOW)
    # Then the live ones come back, keyed, in ceil(250/100) calls
    assert set(found) == {f"CUTOVER#u{n:03d}" for n in range(230) if n % 10}
    assert all(r["phase"] == "switching" for r in found.values())
    assert [len(c["RequestItems"][STATE_TABLE_NAME]["Keys"]) for c in calls.of("batch_get_item")] == [
        100,
        100,
        50,
    ]


def test_unprocessed_keys_are_asked_again_then_fail_as_transient(
    aws: Any, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = StateTable(STATE_TABLE_NAME, clients.dynamodb)
    seed(table, 5)
    monkeypatch.setattr("proxymx.state.time.sleep", lambda _s: None)
    real = clients.dynamodb.batch_get_item
    asked: list[int] = []

    def throttle_first(**kwargs: Any) -> Any:
        keys = kwargs["RequestItems"][STATE_TABLE_NAME]["Keys"]
        asked.append(len(keys))
        if len(asked) == 1:  # the first round: DynamoDB answers 2 keys and leaves 3 unprocessed
            kwargs["RequestItems"][STATE_TABLE_NAME]["Keys"] = keys[:2]
            answer = real(**kwargs)
            answer["UnprocessedKeys"] = {STATE_TABLE_NAME: {"Keys": keys[2:], "ConsistentRead": True}}
            return answer
        return real(**kwargs)

    monkeypatch.setattr(clients.dynamodb, "batch_get_item", throttle_first)
    # When 5 keys are read and the first answer leaves 3 unprocessed
    found = table.get_many((f"CUTOVER#u{n:03d}" for n in range(5)), now=NOW)
    # Then the 3 are asked again, and every live record is there (u000 expired)
    assert asked == [5, 3]
    assert sorted(found) == [f"CUTOVER#u{n:03d}" for n in range(1, 5)]

    # And keys left unprocessed round after round end as a transient error (retried by the caller)
    def always_unprocessed(**kwargs: Any) -> Any:
        keys = kwargs["RequestItems"][STATE_TABLE_NAME]["Keys"]
        return {"Responses": {}, "UnprocessedKeys": {STATE_TABLE_NAME: {"Keys": keys}}}

    monkeypatch.setattr(clients.dynamodb, "batch_get_item", always_unprocessed)
    with pytest.raises(TransientAwsError, match="unprocessed after 5 rounds"):
        table.get_many(["CUTOVER#u001"], now=NOW)
