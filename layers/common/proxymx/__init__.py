"""proxymx: keep a Postfix MX fleet behind AWS load balancers speaking the PROXY protocol."""

__version__ = "0.1.0"
