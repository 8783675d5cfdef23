"""A container as a host process: the image's entrypoint mapped to a program on this machine (images are not
pulled: `vdpactl` of the virtualenv stands for the project's image), `$(VAR)` references expanded, the
environment kubelet gives (the pod's env with downward values, the device plugin's variables, the API server's
address), and the volumes bind-mounted where the pod asks, in a private mount namespace inside the pod's
network namespace (`mounts.entering`)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vdpa_operator.sim.kubelet.errors import KubeletError

ENTRYPOINTS = {"vdpa-operator": ["vdpactl"], "networkstatic/iperf3": ["iperf3"]}
"""Image repository (or its last part, whatever the registry's organisation) → its ENTRYPOINT, for containers that
give no command (deploy/Dockerfile's is vdpactl)."""
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def repository(image: str) -> str:
    """`quay.io/x/vdpa-operator:0.1.0` → `x/vdpa-operator`; the registry host and tag dropped."""
    name = image.split("@")[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":")[0]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    return "/".join(parts)


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is `$`, anything else stays."""
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _REFERENCE.sub(replace, text)


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """A downward API fieldRef; KubeletError for a field kubelet does not offer."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
              "status.podIP": status.get("podIP"), "status.hostIP": status.get("hostIP"),
              "status.podIPs": ",".join(i.get("ip", "") for i in status.get("podIPs") or []),
              "status.hostIPs": ",".join(i.get("ip", "") for i in status.get("hostIPs") or [])}
    if path in simple:
        return str(simple[path] or "")
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise KubeletError(f"fieldRef {path!r} is not supported")


def environment(pod: Mapping[str, Any], container: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    """`base` (service address, device plugin env), then the container's env in order, each expanded against
    the ones before it, as kubelet builds it. configMap/secret keys are read from `base` maps handed in by
    the caller under `configmap:<name>/<key>` and `secret:<name>/<key>`."""
    env = {k: v for k, v in base.items() if ":" not in k}
    for entry in container.get("env") or []:
        name = entry.get("name", "")
        if "value" in entry or not entry.get("valueFrom"):
            env[name] = expand(str(entry.get("value", "")), env)
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"].get("fieldPath", ""))
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            kind = "configmap" if "configMapKeyRef" in source else "secret"
            ref = source.get("configMapKeyRef") or source.get("secretKeyRef") or {}
            key = f"{kind}:{ref.get('name')}/{ref.get('key')}"
            if key in base:
                env[name] = base[key]
            elif not ref.get("optional"):
                raise KubeletError(f"env {name}: {kind} key {ref.get('name')}/{ref.get('key')} not found")
        elif "resourceFieldRef" in source:
            env[name] = "0"
        else:
            raise KubeletError(f"env {name}: valueFrom {sorted(source)} is not supported")
    return env


def command(container: Mapping[str, Any], env: Mapping[str, str], venv_bin: Path) -> list[str]:
    """command + args with `$(VAR)` expanded; no command means the image's entrypoint; command[0] is looked up
    in the virtualenv first, then the system's PATH."""
    argv = [str(a) for a in container.get("command") or []]
    if not argv:
        image = str(container.get("image", ""))
        name = repository(image)
        entry = ENTRYPOINTS.get(name) or ENTRYPOINTS.get(name.rsplit("/", 1)[-1])
        if entry is None:
            raise KubeletError(f"container {container.get('name')}: no command, and the entrypoint of image "
                               f"{image!r} is not known here; give a command")
        argv = list(entry)
    argv += [str(a) for a in container.get("args") or []]
    argv = [expand(a, env) for a in argv]
    if "/" not in argv[0]:
        found = shutil.which(argv[0], path=f"{venv_bin}{os.pathsep}{SYSTEM_PATH}")
        if found is None:
            raise KubeletError(f"container {container.get('name')}: executable {argv[0]!r} not found in "
                               f"{venv_bin} or {SYSTEM_PATH}")
        argv[0] = found
    return argv


def process_env(env: Mapping[str, str], venv_bin: Path) -> dict[str, str]:
    """What the process gets: the container's variables and a PATH that finds the virtualenv's programs (the
    image's PATH, as it were), HOME=/root as in most images."""
    return {"PATH": f"{venv_bin}{os.pathsep}{SYSTEM_PATH}", "HOME": "/root", **env}


def init_and_main(pod: Mapping[str, Any]) -> tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]:
    spec = pod.get("spec") or {}
    return spec.get("initContainers") or [], spec.get("containers") or []
