"""A pod's volumes as directories on this machine, ready to be bind-mounted: hostPath is the node's path under
`--root` (the kernel's paths are the machine's), emptyDir a directory of the pod, configMap/secret their keys as
files, downwardAPI the pod's fields, and the ServiceAccount token (kube-api-access, or the automount kubelet adds)
a TokenRequest's token with the cluster CA and the namespace at /var/run/secrets/kubernetes.io/serviceaccount
(the namespace's `default` account is made when missing: no controller-manager does it here).

As kubelet does, configMap and secret volumes follow their objects while the pod runs (`refresh`): a component
that watches its mounted config (the device plugin its ConfigMap's key) sees each change, written atomically."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import AsyncClient

from vdpa_operator.fileio import write_atomically
from vdpa_operator.kubeclient import (
    ClusterError,
    ConfigMapResource,
    SecretResource,
    api_errors,
    get_or_none,
    http_code,
)
from vdpa_operator.sim.kubelet.containers import field_value
from vdpa_operator.sim.kubelet.errors import KubeletError
from vdpa_operator.sim.kubelet.mounts import Mount, shared
from vdpa_operator.sim.kubelet.settings import KubeletSettings

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SECONDS = 3607


@dataclass
class PodVolumes:
    directories: dict[str, tuple[Path, bool]] = field(default_factory=dict)
    """Volume name → (directory or file on this machine, read-only)."""
    token_dir: Path | None = None
    """The automounted ServiceAccount directory, when the pod has no kube-api-access volume of its own."""

    def mounts(self, container: Mapping[str, Any]) -> list[Mount]:
        mounts = []
        for mount in container.get("volumeMounts") or []:
            name, target = mount.get("name", ""), mount.get("mountPath", "")
            if name not in self.directories:
                raise KubeletError(f"container {container.get('name')}: volumeMount {name!r} names no volume")
            source, read_only = self.directories[name]
            if mount.get("subPath"):
                source = source / mount["subPath"]
            if shared(str(source)) and source == Path(target):
                continue  # the machine's own path where the container expects it: nothing to mount
            mounts.append(Mount(source, target, read_only or bool(mount.get("readOnly"))))
        targets = {m.target.rstrip("/") for m in mounts}
        if self.token_dir is not None and SERVICE_ACCOUNT_DIR not in targets:
            mounts.append(Mount(self.token_dir, SERVICE_ACCOUNT_DIR, True))
        return mounts


def _write(directory: Path, files: Mapping[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _update(directory: Path, files: Mapping[str, bytes]) -> bool:
    """Make `directory` hold exactly `files` (written in place, never half), True when anything changed."""
    if not directory.is_dir():
        return False
    changed = False
    for path in [p for p in directory.rglob("*") if p.is_file()]:
        if str(path.relative_to(directory)) not in files:
            path.unlink()
            changed = True
    for name, data in files.items():
        path = directory / name
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data, mode=0o644)
        changed = True
    return changed


class VolumeMaker:
    def __init__(self, client: AsyncClient, settings: KubeletSettings, ca: bytes) -> None:
        self.client = client
        self.settings = settings
        self.ca = ca

    async def make(self, pod: Mapping[str, Any], pod_dir: Path) -> PodVolumes:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        volumes = PodVolumes()
        for volume in spec.get("volumes") or []:
            name = volume.get("name", "")
            where = pod_dir / "volumes" / name
            if "hostPath" in volume:
                volumes.directories[name] = (self._host_path(volume["hostPath"], name), False)
            elif "emptyDir" in volume:
                where.mkdir(parents=True, exist_ok=True)
                volumes.directories[name] = (where, False)
            elif "configMap" in volume:
                _write(where, await self._config_map(meta["namespace"], volume["configMap"]))
                volumes.directories[name] = (where, True)
            elif "secret" in volume:
                _write(where, await self._secret(meta["namespace"], volume["secret"]))
                volumes.directories[name] = (where, True)
            elif "downwardAPI" in volume:
                _write(where, downward_files(pod, volume["downwardAPI"]))
                volumes.directories[name] = (where, True)
            elif "projected" in volume:
                _write(where, await self._projected(pod, volume["projected"]))
                volumes.directories[name] = (where, True)
            else:
                raise KubeletError(f"volume {name}: only hostPath, emptyDir, configMap, secret, downwardAPI and "
                                   "projected volumes are supported")
        automount = spec.get("automountServiceAccountToken")
        if automount is not False and not any(n.startswith("kube-api-access") for n in volumes.directories):
            where = pod_dir / "volumes" / "kube-api-access"
            _write(where, await self._service_account_files(pod))
            volumes.token_dir = where
        return volumes

    async def refresh(self, pod: Mapping[str, Any], pod_dir: Path) -> list[str]:
        """Bring the pod's configMap and secret volumes up to date with their objects: each changed key rewritten
        atomically, each key gone removed. The volumes changed; one whose object cannot be read now is left as it
        is (kubelet keeps the last content too)."""
        namespace, changed = pod["metadata"]["namespace"], []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            try:
                if "configMap" in volume:
                    files = await self._config_map(namespace, volume["configMap"])
                elif "secret" in volume:
                    files = await self._secret(namespace, volume["secret"])
                else:
                    continue
            except (KubeletError, ClusterError) as exc:
                logger.debug("volume %s not refreshed: %s", volume.get("name"), exc)
                continue
            if _update(pod_dir / "volumes" / volume.get("name", ""), files):
                changed.append(volume.get("name", ""))
        return changed

    def _host_path(self, source: Mapping[str, Any], name: str) -> Path:
        path = str(source.get("path", ""))
        kind = source.get("type", "")
        if shared(path):
            return Path(path)
        local = self.settings.node_path(path)
        if kind == "DirectoryOrCreate" or (not kind and not local.exists()):
            local.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate" and not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            local.touch()
        elif kind in ("Directory", "File", "Socket") and not local.exists():
            raise KubeletError(f"volume {name}: hostPath {path} ({local} on this node) does not exist "
                               f"(type {kind})")
        return local

    async def _config_map(self, namespace: str, source: Mapping[str, Any]) -> dict[str, bytes]:
        obj = await get_or_none(self.client, ConfigMapResource, source.get("name", ""), namespace=namespace)
        if obj is None:
            if source.get("optional"):
                return {}
            raise KubeletError(f"configmap {namespace}/{source.get('name')} not found")
        data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        data |= {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
        return _select(data, source)

    async def _secret(self, namespace: str, source: Mapping[str, Any]) -> dict[str, bytes]:
        obj = await get_or_none(self.client, SecretResource, source.get("secretName") or source.get("name", ""),
                                namespace=namespace)
        if obj is None:
            if source.get("optional"):
                return {}
            raise KubeletError(f"secret {namespace}/{source.get('secretName') or source.get('name')} not found")
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data |= {k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()}
        return _select(data, source)

    async def _projected(self, pod: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        namespace = pod["metadata"]["namespace"]
        for item in source.get("sources") or []:
            if "serviceAccountToken" in item:
                token = item["serviceAccountToken"]
                files[token.get("path", "token")] = (await self._token(pod, token.get("audience"))).encode()
            elif "configMap" in item:
                files |= await self._config_map(namespace, item["configMap"])
            elif "secret" in item:
                files |= await self._secret(namespace, item["secret"])
            elif "downwardAPI" in item:
                files |= downward_files(pod, item["downwardAPI"])
        return files

    async def _service_account_files(self, pod: Mapping[str, Any]) -> dict[str, bytes]:
        return {"token": (await self._token(pod, None)).encode(), "ca.crt": self.ca,
                "namespace": pod["metadata"]["namespace"].encode()}

    async def _token(self, pod: Mapping[str, Any], audience: str | None) -> str:
        """A bound ServiceAccount token through TokenRequest, as kubelet gets one."""
        from lightkube.models.authentication_v1 import BoundObjectReference, TokenRequestSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ServiceAccount

        meta = pod["metadata"]
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        request = ServiceAccount.Token(metadata=ObjectMeta(name=account, namespace=meta["namespace"]),
                                       spec=TokenRequestSpec(
            audiences=[audience] if audience else [], expirationSeconds=TOKEN_SECONDS,
            boundObjectRef=BoundObjectReference(kind="Pod", apiVersion="v1", name=meta["name"], uid=meta.get("uid"))))
        for attempt in range(2):
            try:
                with api_errors("request a token for", f"ServiceAccount {meta['namespace']}/{account}"):
                    answer = await self.client.create(request, account, namespace=meta["namespace"])
                if answer.status is None:
                    raise KubeletError(f"TokenRequest for ServiceAccount {meta['namespace']}/{account}: no token")
                return str(answer.status.token)
            except ClusterError as exc:
                if attempt or account != "default" or http_code(exc) != 404:
                    raise KubeletError(str(exc)) from None
            await self._default_account(meta["namespace"])
        raise AssertionError("unreachable")

    async def _default_account(self, namespace: str) -> None:
        """The simulated cluster has no controller-manager, whose ServiceAccount controller gives every namespace
        its `default` account: the kubelet makes it when a pod needs it."""
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ServiceAccount

        try:
            with api_errors("create", f"ServiceAccount {namespace}/default"):
                await self.client.create(ServiceAccount(metadata=ObjectMeta(name="default", namespace=namespace)))
            logger.info("created ServiceAccount %s/default (a controller-manager's work)", namespace)
        except ClusterError as exc:
            if http_code(exc) != 409:
                raise KubeletError(str(exc)) from None


def downward_files(pod: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, bytes]:
    """A downwardAPI volume's files: a field's value, or a whole labels/annotations map as kubelet writes it
    (`key="value"` lines, sorted; the network-resources-injector's `podnetinfo` volume asks for these)."""
    files = {}
    for entry in source.get("items") or []:
        path = (entry.get("fieldRef") or {}).get("fieldPath", "")
        if path in ("metadata.labels", "metadata.annotations"):
            found = (pod.get("metadata") or {}).get(path.split(".")[1]) or {}
            value = "\n".join(f"{k}={json.dumps(str(found[k]), ensure_ascii=False)}" for k in sorted(found))
        elif entry.get("resourceFieldRef"):
            raise KubeletError(f"downwardAPI {entry.get('path')}: resourceFieldRef is not supported")
        else:
            value = field_value(pod, path)
        files[entry["path"]] = value.encode()
    return files


def _select(data: dict[str, bytes], source: Mapping[str, Any]) -> dict[str, bytes]:
    items = source.get("items")
    if not items:
        return data
    return {i.get("path", i["key"]): data[i["key"]] for i in items if i.get("key") in data}
