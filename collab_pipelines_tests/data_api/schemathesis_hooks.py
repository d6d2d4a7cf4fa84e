"""The rules between rows parameters that OpenAPI cannot state, applied to schemathesis's valid cases.

OpenAPI describes each parameter alone. Three rules join parameters, are stated in their
descriptions, and are refused with a 400 that says so (tests in test_rows.py):
`partition` is not given with `partition_from`/`partition_to`; `partition_from` is not after
`partition_to`; a `cursor` is one the server issued for the same sort. A case schemathesis
generates as valid is made to follow them; its invalid cases are left alone.
"""

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not case.operation.path.endswith("/rows"):
        return
    query = case.query or {}
    if query.get("partition") is not None:
        query.pop("partition_from", None)
        query.pop("partition_to", None)
    first, last = query.get("partition_from"), query.get("partition_to")
    if isinstance(first, str) and isinstance(last, str) and first > last:
        query["partition_from"], query["partition_to"] = last, first
    query.pop("cursor", None)
