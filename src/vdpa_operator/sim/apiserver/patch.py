"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) on plain JSON values; pure functions.

kube-apiserver applies these to the stored object before its own update rules run, so the store uses them
the same way: patch the whole object, then treat the result as an update.
"""

from __future__ import annotations

from typing import Any

from vdpa_operator.api import jsonpatch
from vdpa_operator.api.jsonpatch import merge_patch
from vdpa_operator.bounded import DEFAULT_LIMITS, value_depth
from vdpa_operator.sim.apiserver.errors import StatusError, bad_request

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
"""Server-side apply: the body is the applied configuration (YAML or JSON)."""


MAX_JSON_PATCH_OPERATIONS = 10_000
"""kube-apiserver's `maxJSONPatchOperations`: a longer patch is 413 RequestEntityTooLarge."""
MAX_COPIED_VALUES = DEFAULT_LIMITS.max_alias_nodes
"""What the `copy` operations of one patch may copy together: the budget YAML aliases get, for the same reason."""

__all__ = ["APPLY_PATCH", "JSON_PATCH", "MERGE_PATCH", "STRATEGIC_MERGE_PATCH", "json_patch", "merge_patch"]


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 as kube-apiserver answers it: a body that is not a list of operations is a bad request (400), too
    many operations are 413, an operation that cannot apply (missing path, failed test, copies beyond the
    budget, a result nested deeper than a body may be) is unprocessable (422)."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise StatusError(413, "RequestEntityTooLarge", f"Request entity too large: The allowed maximum operations "
                                                        f"in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got "
                                                        f"{len(operations)}")
    if any(not isinstance(op, dict) or not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str)
           or (op["op"] in ("add", "replace", "test") and "value" not in op) for op in operations):
        raise bad_request("json patch: every operation needs string 'op' and 'path' (and 'value' to add, "
                          "replace or test)")
    try:
        patched = jsonpatch.json_patch(target, operations, max_copied=MAX_COPIED_VALUES)
    except jsonpatch.JsonPatchError as exc:
        raise _unprocessable(str(exc)) from exc
    if value_depth(patched, DEFAULT_LIMITS.max_depth) > DEFAULT_LIMITS.max_depth:
        raise _unprocessable(f"the patched object nests more than {DEFAULT_LIMITS.max_depth} levels deep")
    return patched


def _unprocessable(problem: str) -> StatusError:
    return StatusError(422, "Invalid", f"the server rejected our request due to an error in our request: {problem}")
