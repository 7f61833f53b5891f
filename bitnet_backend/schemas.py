"""JSON schemas for the constrained decoder, as framework integrations hand them over.

Pydantic's schemas leave ``additionalProperties`` unset, which the decoder reads as "any other
key may follow". A Python tool rejects keyword arguments it does not declare, and an output
class has no field for them, so extra keys can only waste tokens or break the call; closing
the objects also keeps a weak model from wandering into key after key until max_tokens.
"""

from __future__ import annotations

from typing import Any


def closed(schema: Any) -> Any:
    """A copy of ``schema`` where objects with declared properties allow no others.

    Objects that say anything about ``additionalProperties`` themselves are left as they are.
    """
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out
