"""Event models: every event is validated here, at the edge, into frozen records.

Validation is a small hand-written reader (:mod:`proxymx.models.reader`) feeding frozen,
keyword-only records (:mod:`proxymx.models.record`), not pydantic and not generated code.
Why, measured on a 2-core machine with Python 3.13 and ``-B`` (as Lambda imports a layer that
ships no bytecode), CPU time of importing a model module after boto3 and Powertools' Logger
and Metrics, median of 5:

- pydantic with Powertools' parser models: ~200 ms (``models.cloudtrail`` 215 ms, the others
  ~200 ms);
- JSON Schemas compiled ahead of time with fastjsonschema 2.21.2 ``compile_to_code``: one
  CloudTrail call shape with its envelope is ~60 KB of generated Python, ~9 ms to compile at
  each import, so tens of ms for the eight handled calls, before the typed objects;
- frozen dataclasses over the reader: ``models.cloudtrail`` 27 ms, ~0.6 ms per class for the
  methods ``@dataclass`` generates and ``exec``s (bytecode in the layer would not save that);
- records over the reader (this package): ``models.cloudtrail`` 8 ms, the others 6-7 ms, most
  of it compiling the source, which bytecode in the layer would save.

The reader is as strict as the models it replaced and stricter where the code needed it
(types, required fields, lengths, patterns, ranges, RFC 3339 times with an offset). It needs no
generator, no dev dependency and no check that generated code is fresh, and a record can only
hold values that went through a read. tests/unit/test_event_rejections.py pins what is rejected.
"""
