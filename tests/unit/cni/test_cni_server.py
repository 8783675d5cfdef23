"""The CNI server's own part, over its real unix socket and HTTP (the plugin behind it is a recorder): each
request parsed once and run on the worker, the pod's k8s.ovn.org/pod-networks annotation read by the event loop
only for an ADD whose config has no IPAM, and a request it cannot read refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vdpa_operator.cni import shim
from vdpa_operator.cni.server import CniServer
from vdpa_operator.cni.spec import CniRequest

ANNOTATION = '{"default": {"ip_addresses": ["10.128.0.5/24"]}}'


class Recorder:
    settings = SimpleNamespace(bridge="br-int")

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def run(self, request: CniRequest, *, pod_networks: str | None = None) -> dict[str, Any] | None:
        self.seen.append((request.command, pod_networks))
        return {"cniVersion": request.config.cni_version} if request.command == "ADD" else None


def env(command: str, pod: str = "p1") -> dict[str, str]:
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "eth0",
            "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": f"K8S_POD_NAMESPACE=ns1;K8S_POD_NAME={pod}"}


def test_the_annotation_is_read_for_an_add_without_ipam_only(short_tmp: Path) -> None:
    plugin, asked = Recorder(), []

    async def annotation(namespace: str, pod: str) -> str | None:
        asked.append((namespace, pod))
        if pod == "broken":
            raise RuntimeError("the API server is away")
        return ANNOTATION

    async def main() -> list[tuple[int, str]]:
        server = CniServer(plugin, short_tmp / "cni.sock", pod_annotation=annotation)  # type: ignore[arg-type]
        await server.start()
        try:
            answers = []
            for command, pod, ipam in (("ADD", "p1", {}), ("ADD", "p1", {"type": "static"}), ("DEL", "p1", {}),
                                       ("ADD", "broken", {})):
                config = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "vdpa-cni", "ipam": ipam})
                answers.append(await asyncio.to_thread(shim._forward, str(server.socket),
                                                       {"env": env(command, pod), "config": config}))
            return answers
        finally:
            await server.stop()

    answers = asyncio.run(main())
    assert answers == [(0, '{"cniVersion": "1.0.0"}'), (0, '{"cniVersion": "1.0.0"}'), (0, ""),
                       (0, '{"cniVersion": "1.0.0"}')]
    assert plugin.seen == [("ADD", ANNOTATION), ("ADD", None), ("DEL", None), ("ADD", None)]
    assert asked == [("ns1", "p1"), ("ns1", "broken")], "asked only for ADDs without ipam"
    assert not (short_tmp / "cni.sock").exists()


def test_a_bad_request_is_a_cni_error_in_the_configs_version(short_tmp: Path) -> None:
    plugin = Recorder()

    async def main() -> tuple[int, str]:
        server = CniServer(plugin, short_tmp / "cni.sock")  # type: ignore[arg-type]
        await server.start()
        try:
            config = json.dumps({"cniVersion": "0.4.0", "name": "n", "type": "vdpa-cni"})
            bad = {**env("ADD"), "CNI_IFNAME": "a/b"}
            return await asyncio.to_thread(shim._forward, str(server.socket), {"env": bad, "config": config})
        finally:
            await server.stop()

    code, out = asyncio.run(main())
    assert code == 1 and plugin.seen == []
    assert json.loads(out) == {"cniVersion": "0.4.0", "code": 4,
                               "msg": "interface name contains / or : or whitespace characters"}
