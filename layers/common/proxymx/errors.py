"""Domain exceptions. Adapters translate every botocore ``ClientError`` into one of these
(``raise ... from exc``); handlers decide retry versus give up."""

from __future__ import annotations


class ProxymxError(Exception):
    """Base class of every proxymx error."""


class MalformedEvent(ProxymxError):
    """The event does not have the shape we need. Permanent: retrying cannot help."""


class TransientAwsError(ProxymxError):
    """Worth retrying later (eventual consistency, throttling that outlived botocore's retries)."""


class PermanentAwsError(ProxymxError):
    """Retrying will not help (access denied, invalid parameter, ...): fail loudly."""


class NotReadyYet(TransientAwsError):
    """The resource exists but is not readable/ready yet (LoadBalancerNotFound right after create,
    an SSM agent not Online yet)."""


class VerificationFailed(ProxymxError):
    """A change was applied but reading it back shows it did not take."""
