"""The shim's fallback when no CNI server listens at the default socket: the request served in the shim's own
process against this machine's kernel and its default OVSDB socket, so a plain CNI setup (cnitool, a runtime
with no node DaemonSet) still works. Without a server there is no node allocator and no pod annotations: the
config's `ipam` must name an IPAM plugin."""

from __future__ import annotations

from typing import Any

from vdpa_operator.cni.answer import answer
from vdpa_operator.cni.plugin import CniSettings, VdpaCni


def serve_locally(request: dict[str, Any]) -> tuple[int, str]:
    from vdpa_operator.host.linux.factory import linux_host
    from vdpa_operator.host.linux.ovsdb import DEFAULT_REMOTE

    host = linux_host(ovsdb_remote=DEFAULT_REMOTE)
    plugin = VdpaCni(host, CniSettings())
    device_info = request.get("deviceInfo")
    return answer(plugin.run, dict(request["env"]), str(request["config"]).encode(),
                  device_info if isinstance(device_info, str) else None)
