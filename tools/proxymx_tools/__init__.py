"""proxymx's tooling, outside the Lambda layer: the ``proxymx`` command line (invoke, demo), the
embedded AWS and its seeders, the local Postfix/HAProxy helpers, the benchmarks, and the readers of
template.yaml (rules, patterns, the SSM document). It imports the runtime package ``proxymx``;
nothing in ``proxymx`` imports it (``python -m proxymx_tools.layercheck`` keeps it that way).
"""
