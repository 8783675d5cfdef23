"""`vdpa-cni` as a runtime runs it: the real executable with the CNI environment and the config on stdin, talking
to the node's CNI server over its unix socket (and, with no server at the default socket, doing the work
itself); the server's answers are the plugin's, the shim's own are VERSION and "try again later"."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from integration.cni.cni_rig import VENV_BIN, Node, cni_env, config, node
from integration.host.linux_netns import needs_root
from vdpa_operator.cni.server import CniServer

SHIM = str(VENV_BIN / "vdpa-cni")


def shim(env: dict[str, str], stdin: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    proc = subprocess.run([SHIM], input=data, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                          timeout=60, check=False)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


@contextmanager
def serving(rig: Node, socket: Path) -> Iterator[None]:
    """The CNI server on `socket`, started here, then served by its event loop in a thread of its own (as in its
    own process); stopped, and the loop closed, however the test ends."""
    loop = asyncio.new_event_loop()
    server = CniServer(rig.plugin, socket)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    try:
        loop.run_until_complete(asyncio.wait_for(server.start(), 10))
        thread.start()
        yield
    finally:
        try:
            if thread.is_alive():
                try:
                    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
                finally:
                    loop.call_soon_threadsafe(loop.stop)
                    thread.join(10)
            else:  # it never started, or only half-way
                loop.run_until_complete(server.stop())
        finally:
            if not thread.is_alive():
                loop.close()


def test_version_is_answered_by_the_shim_itself() -> None:
    code, out = shim({"CNI_COMMAND": "VERSION"}, {"cniVersion": "0.4.0"})
    assert (code, out) == (0, {"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0",
                                                                          "1.1.0"]})


def test_a_configured_server_that_does_not_answer_is_try_again_later(tmp_path: Path) -> None:
    missing = tmp_path / "nobody.sock"
    code, out = shim(cni_env("ADD", "c1", "/var/run/netns/x", "eth0", ("ns", "pod")),
                     config(version="0.3.1", serverSocket=str(missing), deviceID="0000:65:00.2"))
    assert (code, out["cniVersion"], out["code"]) == (1, "0.3.1", 11)
    assert str(missing) in out["details"] and "vdpactl cni-server" in out["details"]


@needs_root
def test_add_check_del_through_the_shim_and_the_server(tmp_path: Path, short_tmp: Path) -> None:
    socket = short_tmp / "cni.sock"  # a unix socket's path holds 107 bytes at most
    with node(tmp_path) as rig, serving(rig, socket):
        pod = rig.pod()
        info = tmp_path / "devinfo.json"
        info.write_text(json.dumps({"type": "vdpa", "version": "1.1.0", "vdpa": {
            "parent-device": "vdpa:0000:65:00.2", "driver": "virtio", "pci-address": "0000:65:00.2"}}))
        conf = config(version="0.4.0", serverSocket=str(socket), deviceID="0000:65:00.2",
                      capabilities={"CNIDeviceInfoFile": True}, runtimeConfig={"CNIDeviceInfoFile": str(info)})
        env = cni_env("ADD", "c1", pod, "eth0", ("vdpa", "vdpa-pod1"))
        code, result = shim(env, conf)
        assert code == 0, result
        assert result["cniVersion"] == "0.4.0" and result["ips"][0]["version"] == "4"
        assert rig.ports()["ens1f0_0"]["sandbox"] == "c1"
        code, out = shim({**env, "CNI_COMMAND": "CHECK"}, {**conf, "prevResult": result})
        assert (code, out) == (0, {})
        code, out = shim({**env, "CNI_COMMAND": "DEL"}, {**conf, "prevResult": result})
        assert (code, out) == (0, {}) and rig.ports() == {}
        info.write_text(json.dumps({"type": "vdpa", "version": "1.1.0", "vdpa": {
            "parent-device": "vdpa:0000:65:00.2", "driver": "vhost", "path": "/dev/vhost-vdpa-0"}}))
        code, out = shim(env, conf)
        assert (code, out["code"]) == (1, 101) and "the device-info file says vhost" in out["msg"]
        code, out = shim({**env, "CNI_IFNAME": ""}, conf)
        assert (code, out["code"], out["msg"]) == (1, 4, "required env variables [CNI_IFNAME] missing")
        code, out = shim(env, b"{not json")
        assert (code, out["code"]) == (1, 6)


def test_no_server_at_the_default_socket_means_working_in_process() -> None:
    """Here that is this machine's kernel, which has no vDPA device for the VF: the error comes from the
    plugin's own checks, run in the shim's process."""
    if Path("/var/run/vdpa-cni/server.sock").exists():
        pytest.skip("a CNI server listens at the default socket on this machine")
    code, out = shim(cni_env("ADD", "c1", "/proc/self/ns/net", "eth0", ("ns", "pod")),
                     config(deviceID="0000:65:00.2"))
    assert code == 1 and out["code"] in (11, 101), out
    assert "0000:65:00.2 has no vDPA device" in out["msg"] or "no OVSDB connection" in out["msg"]
