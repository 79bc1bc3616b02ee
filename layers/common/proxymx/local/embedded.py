"""The embedded AWS: moto, in-process, plus proxymx's documented extension of it.

Everything local (tests, ``proxymx invoke --backend moto``, ``make demo``) enters the embedded
AWS through :func:`embedded_aws` so that they all see the same behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest import mock

from proxymx import aws

FAKE_ACCOUNT = "123456789012"


@dataclass
class EmbeddedAws:
    region: str


@contextmanager
def embedded_aws(region: str = "us-east-1") -> Iterator[EmbeddedAws]:
    """Start moto in-process with fake credentials; every proxymx client created inside uses it."""
    from moto import mock_aws

    fake_env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }
    with mock.patch.dict(os.environ, fake_env), mock_aws():
        aws.reset_clients()
        try:
            yield EmbeddedAws(region=region)
        finally:
            aws.reset_clients()
