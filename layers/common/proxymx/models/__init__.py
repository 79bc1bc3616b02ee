"""Event models: every event is validated here, at the edge, into frozen dataclasses.

Validation is a small hand-written reader (:mod:`proxymx.models.reader`), not pydantic and not
generated code. Why, measured on this machine (Python 3.13, ``-B``, as Lambda imports a layer
that ships no bytecode): pydantic plus Powertools' parser models cost ~150 ms of CPU per cold
start before the first event; JSON Schemas compiled ahead of time with fastjsonschema 2.21.2
(``compile_to_code``) give ~60 KB of Python per CloudTrail call shape, ~9 ms to compile each
at import, so ~15-40 ms for the eight handled calls and the envelope, against ~2 ms for the
reader and these models. The reader is as strict (types, required fields, lengths, patterns,
ranges, RFC 3339 times with an offset), needs no generator, no dev dependency and no check
that generated code is fresh, and a model can only hold values that went through a read.
"""
