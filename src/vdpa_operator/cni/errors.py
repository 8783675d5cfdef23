"""CNI errors as the spec defines them (SPEC.md §5 "Error"): a code, a short message and details, printed as
JSON on stdout with a non-zero exit. Codes 0-99 are the spec's; 100 and up are this plugin's own."""

from __future__ import annotations

from vdpa_operator.errors import VdpaOperatorError

INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
"""STATUS: the plugin cannot service ADD requests."""
LIMITED_CONNECTIVITY = 51
"""STATUS: not available, and existing containers may have limited connectivity."""
HOST_FAILURE = 100
"""A kernel or OVSDB operation failed (the message names the operation, the object and the errno)."""
DEVICE_MISMATCH = 101
"""The device is not what the request says it is (not a VF with a vDPA device, device-info disagrees)."""
IPAM_FAILURE = 102
"""The delegated IPAM plugin, or the node's own allocator, could not give an address."""
INTERNAL = 999
"""libcni's code for an error the plugin did not classify."""


class CniError(VdpaOperatorError):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        self.code = code
        self.msg = msg
        self.details = details
        super().__init__(f"{msg}; {details}" if details else msg)

    def to_json(self, cni_version: str) -> dict[str, object]:
        body: dict[str, object] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            body["details"] = self.details
        return body
