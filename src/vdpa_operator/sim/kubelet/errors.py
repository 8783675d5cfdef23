"""The small kubelet's errors: each says which pod, what failed and why; the pod's status carries the text."""

from __future__ import annotations

from vdpa_operator.errors import VdpaOperatorError


class KubeletError(VdpaOperatorError):
    """A pod cannot start (yet): no network definition, no device, a CNI failure, a command that is not there."""
