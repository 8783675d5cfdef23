"""The CNI chain as Multus runs it for a pod's default network (`v1.multus-cni.io/default-network`).

Multus reads the annotation (`namespace/name`, or a bare name looked up in Multus's own namespace), fetches the
NetworkAttachmentDefinition, and when the NAD names a resource (`k8s.v1.cni.cncf.io/resourceName`) gives the
delegate one of the devices the device plugin allocated to the pod: top-level `deviceID` (and `pciBusID`) in
every plugin's config, and `runtimeConfig.CNIDeviceInfoFile` for plugins that declare that capability (libcni
passes runtimeConfig keys only for declared capabilities), the device plugin's device-info file copied for the
CNI first. Each plugin is exec'd from CNI_PATH with the spec's environment, on stdin its config; ADD in order,
DEL in reverse with the ADD's result as prevResult.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vdpa_operator.api.multus import DEFAULT_NETWORK_ANNOTATION
from vdpa_operator.bounded import ParseError, loads_json
from vdpa_operator.sim.kubelet.errors import KubeletError
from vdpa_operator.sim.kubelet.mounts import Mount, entering

logger = logging.getLogger(__name__)

DEVINFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo"
"""Where device-info files live on a node (device-info spec): `dp/` from the device plugin, `cni/` for the CNI."""
CNI_TIMEOUT = 120.0
"""OVN-K's CNI waits up to 2 minutes for its pod annotation; nothing of ours should take longer."""


def default_network(annotations: Mapping[str, str], multus_namespace: str) -> tuple[str, str] | None:
    """(namespace, name) of the NAD the annotation names, None without the annotation; KubeletError when it is
    not `name` or `namespace/name`."""
    value = (annotations.get(DEFAULT_NETWORK_ANNOTATION) or "").strip()
    if not value:
        return None
    namespace, _, name = value.rpartition("/")
    if "/" in namespace or not name or "@" in name:
        raise KubeletError(f"annotation {DEFAULT_NETWORK_ANNOTATION} {value!r}: expected NAME or NAMESPACE/NAME")
    return namespace or multus_namespace, name


@dataclass(frozen=True)
class Attachment:
    """One network's delegate as Multus runs it."""

    network: str
    """`namespace/name` of the NAD."""
    plugins: tuple[dict[str, Any], ...]
    """Each plugin's config as it goes on stdin (name and cniVersion copied from a conflist)."""
    resource: str
    device_id: str
    device_info_file: str
    """The CNI device-info file as the node sees it, "" when none."""


def plugins_of(nad: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(cniVersion, plugin configs) of a NAD's spec.config: one plugin or a conflist."""
    meta = nad.get("metadata") or {}
    where = f"NetworkAttachmentDefinition {meta.get('namespace')}/{meta.get('name')}"
    text = (nad.get("spec") or {}).get("config") or ""
    try:
        config = loads_json(text, f"{where} spec.config")
    except ParseError as exc:
        raise KubeletError(str(exc)) from None
    if not isinstance(config, dict):
        raise KubeletError(f"{where}: spec.config is not a JSON object")
    version = str(config.get("cniVersion") or "0.3.1")
    if isinstance(config.get("plugins"), list):
        plugins = [{"name": config.get("name", ""), "cniVersion": version, **p} for p in config["plugins"]
                   if isinstance(p, dict)]
    else:
        plugins = [config]
    for plugin in plugins:
        if not isinstance(plugin.get("type"), str) or not plugin["type"]:
            raise KubeletError(f"{where}: spec.config has a plugin without a type")
    return version, plugins


def with_device(plugin: Mapping[str, Any], device_id: str, device_info_file: str) -> dict[str, Any]:
    """Multus's `delegateAddDeviceID` and libcni's capability args."""
    config = dict(plugin)
    if device_id:
        config["deviceID"] = device_id
        config["pciBusID"] = device_id
    capabilities = config.get("capabilities")
    if device_info_file and isinstance(capabilities, dict) and capabilities.get("CNIDeviceInfoFile"):
        config["runtimeConfig"] = {**(config.get("runtimeConfig") or {}), "CNIDeviceInfoFile": device_info_file}
    return config


def cni_device_info(root: Path, resource: str, device_id: str, network: str, container_id: str,
                    ifname: str) -> str:
    """Copy the device plugin's device-info file for the CNI (nadutils `CopyDeviceInfoForCNIFromDP`); the node
    path of the copy, "" when the device plugin wrote none."""
    source = root / DEVINFO_DIR.lstrip("/") / "dp" / f"{resource.replace('/', '-')}-{device_id}-device.json"
    if not source.is_file():
        return ""
    name = f"{network.replace('/', '-')}-{container_id}_{ifname}"
    target = root / DEVINFO_DIR.lstrip("/") / "cni" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return f"{DEVINFO_DIR}/cni/{name}"


@dataclass(frozen=True)
class CniCall:
    """What every exec of one pod's chain shares."""

    cni_bin_dir: Path
    netns: str
    container_id: str
    ifname: str
    pod: tuple[str, str, str]
    """(namespace, name, uid)"""
    mounts: tuple[Mount, ...]
    """The node's view for the plugin (its server socket, device-info files)."""
    runtime_netns: str
    """The node's network namespace (a path): where a runtime, and so its plugins, run."""
    node_env: tuple[tuple[str, str], ...] = ()
    """The node's own variables (`KubeletSettings.container_env`): a plugin serving a request itself, with no
    server to forward to, still acts on the node's simulated host."""

    def env(self, command: str) -> dict[str, str]:
        namespace, name, uid = self.pod
        return {"CNI_COMMAND": command, "CNI_CONTAINERID": self.container_id, "CNI_NETNS": self.netns,
                "CNI_IFNAME": self.ifname, "CNI_PATH": str(self.cni_bin_dir),
                "CNI_ARGS": f"IgnoreUnknown=true;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};"
                            f"K8S_POD_INFRA_CONTAINER_ID={self.container_id};K8S_POD_UID={uid}",
                "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **dict(self.node_env)}

    async def run(self, command: str, plugin: Mapping[str, Any]) -> dict[str, Any]:
        """One plugin exec'd (in the node's mount view and network namespace, as a runtime runs it); its printed
        result, KubeletError with the plugin's error code and message when it fails."""
        kind = str(plugin["type"])
        binary = self.cni_bin_dir / kind
        if not os.access(binary, os.X_OK):
            raise KubeletError(f"CNI plugin {kind!r} not found in {self.cni_bin_dir}")
        argv = entering(self.runtime_netns, self.mounts, [str(binary)])
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=self.env(command))
        try:
            async with asyncio.timeout(CNI_TIMEOUT):
                out, err = await process.communicate(json.dumps(plugin).encode())
        except TimeoutError:
            process.kill()
            await process.wait()
            raise KubeletError(f"CNI {command} {kind}: no answer within {CNI_TIMEOUT:g}s") from None
        try:
            answer = json.loads(out) if out.strip() else {}
        except ValueError:
            answer = {}
        if process.returncode != 0:
            why = answer.get("msg") or err.decode(errors="replace").strip() or out.decode(errors="replace").strip()
            details = f" ({answer['details']})" if answer.get("details") else ""
            code = f" code {answer['code']}" if "code" in answer else ""
            raise KubeletError(f"CNI {command} {kind} failed{code}: {why}{details}")
        return answer if isinstance(answer, dict) else {}


async def add(call: CniCall, attachment: Attachment) -> dict[str, Any]:
    """ADD through the chain; the last plugin's result (each gets the previous one as prevResult)."""
    result: dict[str, Any] = {}
    for plugin in attachment.plugins:
        config = dict(plugin)
        if result:
            config["prevResult"] = result
        result = await call.run("ADD", config)
    return result


async def delete(call: CniCall, attachment: Attachment, result: Mapping[str, Any]) -> None:
    """DEL through the chain in reverse; a failure is logged and the rest still run (DEL must not block
    cleanup)."""
    for plugin in reversed(attachment.plugins):
        config = dict(plugin)
        if result:
            config["prevResult"] = dict(result)
        try:
            await call.run("DEL", config)
        except KubeletError as exc:
            logger.warning("pod %s/%s: %s", call.pod[0], call.pod[1], exc)


def pod_ips(result: Mapping[str, Any]) -> list[str]:
    """The addresses of a CNI result, without prefix length."""
    return [str(ip.get("address", "")).split("/")[0] for ip in result.get("ips") or [] if ip.get("address")]


def network_status(network: str, result: Mapping[str, Any], ifname: str, device_info: str,
                   root: Path) -> list[dict[str, Any]]:
    """The `k8s.v1.cni.cncf.io/network-status` annotation value Multus writes."""
    interfaces = [i for i in result.get("interfaces") or [] if i.get("sandbox")]
    entry: dict[str, Any] = {"name": network, "interface": ifname, "ips": pod_ips(result), "default": True,
                             "dns": result.get("dns") or {}}
    if interfaces and interfaces[0].get("mac"):
        entry["mac"] = interfaces[0]["mac"]
    if device_info:
        path = root / device_info.lstrip("/")
        if path.is_file():
            entry["device-info"] = json.loads(path.read_text())
    return [entry]
