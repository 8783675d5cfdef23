"""A `PodExec` for tests: each pod is a real network namespace (and the env its container would have), and the
command runs there with `ip netns exec` (root). It stands where `kubeexec.exec_in_pod` stands in a cluster; an
unknown pod is refused as the API server refuses it (404)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vdpa_operator.kubeclient import ClusterError


@dataclass(frozen=True)
class Sandbox:
    netns: str
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


@dataclass
class NetnsPodExec:
    sandboxes: dict[tuple[str, str], Sandbox]
    calls: list[tuple[str, str, tuple[str, ...], str | None]] = field(default_factory=list)
    """(namespace, pod, command, container) of every call, in order."""

    async def __call__(self, namespace: str, pod: str, command: Sequence[str], *, container: str | None = None,
                       timeout: float = 30.0) -> ExecResult:
        self.calls.append((namespace, pod, tuple(command), container))
        sandbox = self.sandboxes.get((namespace, pod))
        if sandbox is None:
            raise ClusterError(f"exec in Pod {namespace}/{pod} failed: 404 NotFound: pods \"{pod}\" not found")
        env = [f"{key}={value}" for key, value in sandbox.env.items()]
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", sandbox.netns, "env", *env, *command,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ClusterError(f"exec in Pod {namespace}/{pod}: {' '.join(command)} timed out") from None
        assert process.returncode is not None
        return ExecResult(stdout, stderr, process.returncode)
