"""API errors as kube-apiserver reports them: a `Status` object with a reason and an HTTP code.

The storage raises these; the HTTP layer only serialises them, so messages read like the real server's
(`sriovnetworknodestates.sriovnetwork.openshift.io "node1" not found`) and clients' error handling is exercised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vdpa_operator.errors import VdpaOperatorError


class StatusError(VdpaOperatorError):
    """A request the API refuses, with the `metav1.Status` the real server would send."""

    def __init__(
        self, code: int, reason: str, message: str, *, name: str = "", group: str = "", kind: str = "",
        causes: Sequence[Mapping[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = {k: v for k, v in {"name": name, "group": group, "kind": kind}.items() if v}
        if causes:
            self.details["causes"] = [dict(c) for c in causes]

    def status(self) -> dict[str, Any]:
        """The `Status` body (also the object of a watch ERROR event)."""
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def _resource(group_resource: str, name: str) -> str:
    return f'{group_resource} "{name}"'


def _parts(group_resource: str) -> tuple[str, str]:
    plural, _, group = group_resource.partition(".")
    return plural, group


def not_found(group_resource: str, name: str) -> StatusError:
    plural, group = _parts(group_resource)
    return StatusError(
        404, "NotFound", f"{_resource(group_resource, name)} not found", name=name, group=group, kind=plural
    )


def already_exists(group_resource: str, name: str) -> StatusError:
    plural, group = _parts(group_resource)
    return StatusError(
        409, "AlreadyExists", f"{_resource(group_resource, name)} already exists", name=name, group=group, kind=plural
    )


def conflict(group_resource: str, name: str) -> StatusError:
    plural, group = _parts(group_resource)
    return StatusError(
        409,
        "Conflict",
        f"Operation cannot be fulfilled on {_resource(group_resource, name)}: the object has been modified; "
        "please apply your changes to the latest version and try again",
        name=name,
        group=group,
        kind=plural,
    )


def invalid(kind: str, name: str, field: str, detail: str, *, group: str = "",
            reason: str = "FieldValueInvalid") -> StatusError:
    """422 for one field error; `detail` is the error body (`Invalid value: 0x0: must be specified ...`)."""
    return invalid_fields(kind, group, name, [{"reason": reason, "field": field, "message": detail}])


def invalid_fields(kind: str, group: str, name: str, causes: Sequence[Mapping[str, str]]) -> StatusError:
    """422 Invalid as `errors.NewInvalid` words it: `Kind.group "name" is invalid: <field>: <error>`, several
    distinct errors joined with ", " inside [...]; one `details.causes` entry per field error."""
    qualified = f"{kind}.{group}" if group else kind
    texts = list(dict.fromkeys(f"{c['field']}: {c['message']}" for c in causes))
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    message = f'{qualified} "{name}" is invalid: {joined}' if texts else f'{qualified} "{name}" is invalid'
    return StatusError(422, "Invalid", message, name=name, group=group, kind=kind, causes=causes)


def forbidden(group_resource: str, name: str, detail: str) -> StatusError:
    """403 as `errors.NewForbidden` words it (`configmaps "x" is forbidden: unable to create ...`)."""
    plural, group = _parts(group_resource)
    return StatusError(403, "Forbidden", f"{_resource(group_resource, name)} is forbidden: {detail}", name=name,
                       group=group, kind=plural)


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def expired(requested: int, oldest: int) -> StatusError:
    """A watch from a resourceVersion the event log no longer holds (the real server's reason is Expired)."""
    return StatusError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def unsupported_media_type(content_type: str, accepted: list[str]) -> StatusError:
    return StatusError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({content_type}) - accepted media types include: "
        + ", ".join(accepted),
    )


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)
