"""What the simulated kernel answers when it refuses, and its one translation into the Host port's errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from vdpa_operator.host.errors import HostError, KernelModuleMissing, error_from_errno


class KernelError(OSError):
    """What the simulated kernel answers: an errno plus the extack-like detail. An OSError, so sysfs writes
    surface it exactly as a failing write(2) would."""

    def __init__(self, errno: int, detail: str = "") -> None:
        super().__init__(errno, os.strerror(errno))
        self.detail = detail


class FamilyMissing(KernelError):
    """A generic netlink family that is not registered (its module is not loaded)."""


def host_error(exc: KernelError, op: str, target: str, hint: str = "") -> HostError:
    """The sim adapters' one translation from the model's answer to the HostError family: the same classes
    the Linux adapter raises for the same errno, with the model's extack-like text as detail."""
    if isinstance(exc, FamilyMissing):
        return KernelModuleMissing(op, target, hint=hint, detail=exc.detail)
    return error_from_errno(exc.errno, op, target, hint=hint, detail=exc.detail)


@contextmanager
def host_errors(op: str, target: str, hint: str = "") -> Iterator[None]:
    """`host_error` around a call into the model: what the sim adapters wrap each operation in."""
    try:
        yield
    except KernelError as exc:
        raise host_error(exc, op, target, hint) from exc
