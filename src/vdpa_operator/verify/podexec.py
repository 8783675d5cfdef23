"""The one capability verify needs from a cluster besides reading objects: run a command in a pod's container.

`vdpa_operator.kubeexec.exec_in_pod` (WebSocket exec through the API server) fits it once its kubeconfig is
bound (`functools.partial(exec_in_pod, kubeconfig)`); tests run the command in a network namespace instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ExecOutput(Protocol):
    @property
    def stdout(self) -> bytes: ...

    @property
    def stderr(self) -> bytes: ...

    @property
    def exit_code(self) -> int: ...


class PodExec(Protocol):
    async def __call__(self, namespace: str, pod: str, command: Sequence[str], *, container: str | None = None,
                       timeout: float = ...) -> ExecOutput:
        """Run `command` in the pod (its first container unless `container`); a failure to run it at all (no
        such pod, the API refusing) raises a `VdpaOperatorError`."""
        ...
