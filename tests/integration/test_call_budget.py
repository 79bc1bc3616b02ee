"""The call budget measured (issue 9, finding 3): a throttled or hung AWS endpoint on loopback makes
one call fail within its budget — half the function's timeout — as a TransientAwsError the launch
flow turns into a retried record, not a Lambda timeout that redelivers the whole batch."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from proxymx import aws
from proxymx.budget import call_budget
from proxymx.errors import TransientAwsError
from proxymx.launch.runcommand import RunCommand

THROTTLED = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'


class _Endpoint(http.server.BaseHTTPRequestHandler):
    mode = "throttle"
    requests: list[float]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.requests.append(time.monotonic())
        if self.mode == "hang":
            time.sleep(5)  # longer than any read timeout under test
            return
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(THROTTLED)))
        self.end_headers()
        self.wfile.write(THROTTLED)

    def log_message(self, *_: Any) -> None:  # quiet: the test asserts, not the log
        return


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[float]]]:
    requests: list[float] = []
    handler = type("Endpoint", (_Endpoint,), {"mode": request.param, "requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def send_through(url: str, function_timeout: int) -> float:
    """SendCommand through a client with the function's budget; the seconds until it failed."""
    client = boto3.client(
        "ssm",
        region_name="us-east-1",
        endpoint_url=url,
        config=aws.botocore_config(call_budget(function_timeout)),
    )
    started = time.monotonic()
    with pytest.raises(TransientAwsError):
        RunCommand(client).send_command(
            ["i-0123456789abcdef0"],
            document_name="proxymx-PostfixProxyProtocolDocument",
            parameters={"SmtpPorts": "25"},
            comment="proxymx:test",
            timeout_seconds=600,
        )
    return time.monotonic() - started


@pytest.mark.parametrize("endpoint", ["throttle"], indirect=True)
@pytest.mark.parametrize("function_timeout", [30, 240])
def test_a_throttled_call_gives_up_within_half_the_function_timeout(
    endpoint: tuple[str, list[float]], function_timeout: int
) -> None:
    # Given an endpoint that throttles every request, and a function with this timeout
    url, requests = endpoint
    budget = call_budget(function_timeout)
    # When one call is made
    elapsed = send_through(url, function_timeout)
    # Then it was tried exactly as often as the budget says, and gave up within the budget's worst
    # case, itself within half of the function's timeout (the queue retries the record)
    assert len(requests) == budget.attempts
    assert elapsed <= budget.worst_case_seconds <= function_timeout / 2


@pytest.mark.parametrize("endpoint", ["hang"], indirect=True)
def test_a_hung_call_gives_up_at_its_read_timeout(endpoint: tuple[str, list[float]]) -> None:
    # Given an endpoint that accepts the request and never answers, and a 6 s function
    url, requests = endpoint
    budget = call_budget(6)
    # When one call is made
    elapsed = send_through(url, 6)
    # Then it gives up after its attempts' read timeouts, well before the function's timeout
    assert len(requests) == budget.attempts
    assert budget.read_timeout * budget.attempts <= elapsed <= budget.worst_case_seconds + 0.5 <= 6 / 2
