"""Upstream's network-resources-injector, decided without I/O: a pod's network annotations and the
NetworkAttachmentDefinitions they name → the JSON patch that requests their device-plugin resources, or a refusal.

As `k8snetworkplumbingwg/network-resources-injector` `pkg/webhook/webhook.go` (`MutateHandler`) with upstream's
default switches (`honor-resources` off, `network-resource-name-keys` = `k8s.v1.cni.cncf.io/resourceName`):
- `k8s.v1.cni.cncf.io/networks` is a JSON list of `{"name", "namespace", "interface"}` or, when it is not JSON, a
  comma list of `[<namespace>/]<name>[@<interface>]`; `v1.multus-cni.io/default-network` is read the same way
  and must name one network. A name without a namespace is looked up in the pod's namespace (the injector's
  rule; Multus itself would look for an unqualified default network in its own namespace, `kube-system`).
- Every named NAD must exist; each one annotated `k8s.v1.cni.cncf.io/resourceName` adds 1 of that resource, so a
  network named twice counts twice. The sum goes into the first container's `requests` and `limits`, unless some
  container already asks for that resource (then it is left as the pod says).
- When any named network carries a resource, the `podnetinfo` downward-API volume (the pod's labels and
  annotations — Multus's `k8s.v1.cni.cncf.io/network-status` among them — as files) is mounted read-only at
  `/etc/podnetinfo` in every container; a NAD's `k8s.v1.cni.cncf.io/nodeSelector` (`key=value`) joins the pod's
  nodeSelector.

Where this differs: upstream answers a malformed annotation with HTTP 400, which the API server treats as a
failed call and, under the webhook's `failurePolicy: Ignore`, admits the pod without its resources; here it is a
refusal naming the annotation. Upstream ignores a default network that names several networks; Multus fails such
a pod at sandbox creation, so it is refused here with Multus's text. Empty `requests`/`limits` maps are added only
when something goes into them. Hugepage downward-API items (upstream's `enableHugePageDownApi`) are not made.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vdpa_operator.api.multus import DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, RESOURCE_NAME_ANNOTATION
from vdpa_operator.bounded import ParseError, loads_json
from vdpa_operator.errors import VdpaOperatorError

NODE_SELECTOR_ANNOTATION = "k8s.v1.cni.cncf.io/nodeSelector"
PODNETINFO_VOLUME = "podnetinfo"
PODNETINFO_MOUNT_PATH = "/etc/podnetinfo"
NAD_RESOURCE = "network-attachment-definitions.k8s.cni.cncf.io"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
"""Upstream's check of each part of a comma-list element (a DNS-1123 label)."""
_FORMS = ('write "[<namespace>/]<name>[@<interface>]" items separated by commas, or a JSON list of '
          '{"name", "namespace", "interface"} objects')

Patch = list[dict[str, Any]]


class InjectionRefused(VdpaOperatorError, ValueError):
    """The pod cannot be admitted as written; the message is what the API server reports to its author."""


@dataclass(frozen=True)
class NetworkSelection:
    namespace: str
    name: str
    interface: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


NadAnnotations = Mapping[str, str]
"""A NetworkAttachmentDefinition as the injector reads it: its annotations."""


@dataclass(frozen=True)
class NadMissing:
    """A NAD the lookup did not get; `reason` is the API's answer (e.g. `... "x" not found`)."""

    reason: str


def not_found(name: str) -> NadMissing:
    """The API server's 404 text for a NAD."""
    return NadMissing(f'{NAD_RESOURCE} "{name}" not found')


# --- Which networks ------------------------------------------------------------------------------------------


def pod_networks(pod: Mapping[str, Any], namespace: str = "") -> tuple[NetworkSelection, ...]:
    """The networks the pod names, default network first; `namespace` is the request's, used when the pod's
    metadata has none. Raises InjectionRefused for an annotation that cannot be read."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    namespace = metadata.get("namespace") or namespace
    found: list[NetworkSelection] = []
    default = annotations.get(DEFAULT_NETWORK_ANNOTATION)
    if default:
        selections = _parse(DEFAULT_NETWORK_ANNOTATION, str(default), namespace)
        if len(selections) > 1:
            raise InjectionRefused(f'pod annotation "{DEFAULT_NETWORK_ANNOTATION}": more than one default network '
                                   f"is specified: {default} (name exactly one network there)")
        found += selections
    networks = annotations.get(NETWORKS_ANNOTATION)
    if networks:
        found += _parse(NETWORKS_ANNOTATION, str(networks), namespace)
    return tuple(found)


def _parse(annotation: str, text: str, namespace: str) -> list[NetworkSelection]:
    """One annotation; with no namespace known and an element without one, nothing (upstream lets the pod be)."""
    try:
        document = loads_json(text, f'pod annotation "{annotation}"')
    except ParseError:
        document = None
    if isinstance(document, list):
        elements = [_json_element(annotation, i, item, namespace) for i, item in enumerate(document)]
    else:  # not a JSON list: upstream then reads a comma list
        elements = [_comma_element(annotation, part.strip(), namespace) for part in text.split(",")]
    if any(not e.namespace for e in elements):
        return []
    return elements


def _json_element(annotation: str, index: int, item: Any, namespace: str) -> NetworkSelection:
    where = f'pod annotation "{annotation}" item {index}'
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        raise InjectionRefused(f'{where}: a network selection element needs a "name" string; got '
                               f"{json.dumps(item)[:200]} ({_FORMS})")
    for field in ("namespace", "interface"):
        if field in item and not isinstance(item[field], str):
            raise InjectionRefused(f'{where}: "{field}" must be a string; got {json.dumps(item[field])[:200]}')
    return NetworkSelection(item.get("namespace") or namespace, item["name"], item.get("interface") or "")


def _comma_element(annotation: str, selection: str, namespace: str) -> NetworkSelection:
    """Upstream `parsePodNetworkSelectionElement`, with its error texts after where the fault is and how to fix."""

    def refuse(reason: str) -> InjectionRefused:
        return InjectionRefused(f'pod annotation "{annotation}": error parsing network selection element: '
                                f"{reason} ({_FORMS})")

    if not selection:
        raise refuse("invalid network selection element - an empty element (a stray comma?)")
    units = selection.split("/")
    if len(units) > 2:
        raise refuse(f"invalid network selection element - more than one '/' rune in: '{selection}'")
    name = units[-1]
    if len(units) == 2:
        namespace = units[0]
    units = name.split("@")
    if len(units) > 2:
        raise refuse(f"invalid network selection element - more than one '@' rune in: '{selection}'")
    name, interface = units[0], units[1] if len(units) == 2 else ""
    for unit in (namespace, name, interface):
        if unit and not _NAME.match(unit):
            raise refuse(f"at least one of the network selection units is invalid: error found at '{unit}'")
    if not name:
        raise refuse(f"invalid network selection element - no network name in: '{selection}'")
    return NetworkSelection(namespace, name, interface)


# --- What to add ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Injection:
    patch: Patch
    """JSON patch operations for the pod (empty: admit it unchanged)."""
    resources: Mapping[str, int]
    """What was added to the first container, per resource."""


def injection(
    pod: Mapping[str, Any],
    networks: Sequence[NetworkSelection],
    nads: Mapping[tuple[str, str], NadAnnotations | NadMissing],
) -> Injection:
    """The patch for `pod` given the NADs its `networks` name (as looked up: annotations, or why not)."""
    wanted: Counter[str] = Counter()
    node_selector: dict[str, str] = {}
    for network in networks:
        nad = nads.get(network.key)
        if nad is None:
            nad = not_found(network.name)
        if isinstance(nad, NadMissing):
            where = f"{network.namespace}/{network.name}"
            raise InjectionRefused(f"could not find network attachment definition '{where}': "
                                   f"could not get Network Attachment Definition {where}: {nad.reason}")
        resource = nad.get(RESOURCE_NAME_ANNOTATION)
        if resource:
            wanted[resource] += 1
        if NODE_SELECTOR_ANNOTATION in nad:
            node_selector.update(_node_selector(network, nad[NODE_SELECTOR_ANNOTATION]))
    spec = pod.get("spec") or {}
    containers: list[Mapping[str, Any]] = list(spec.get("containers") or [])
    patch: Patch = []
    added: dict[str, int] = {}
    if wanted:
        if not containers:
            raise InjectionRefused(f"the pod's networks need {_list(wanted)} but the pod has no container to carry "
                                   "them: add one under spec.containers")
        added = {r: n for r, n in sorted(wanted.items()) if not _requested_anywhere(containers, r)}
        patch += _resource_patch(containers[0], added)
        patch += _podnetinfo_patch(pod, containers)
    existing = dict(spec.get("nodeSelector") or {})
    if node_selector and {**existing, **node_selector} != existing:
        patch.append({"op": "add", "path": "/spec/nodeSelector", "value": {**existing, **node_selector}})
    return Injection(patch, added)


def _list(resources: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {r}" for r, n in sorted(resources.items()))


def _node_selector(network: NetworkSelection, text: str) -> dict[str, str]:
    parts = text.split("=")
    if len(parts) > 2:
        raise InjectionRefused(f"node selector in net-attach-def {network.name} has more than one label "
                               f"({NODE_SELECTOR_ANNOTATION}: {text!r}; write one key=value)")
    return {parts[0].strip(): parts[1].strip() if len(parts) == 2 else ""}


def _requested_anywhere(containers: Sequence[Mapping[str, Any]], resource: str) -> bool:
    """Upstream leaves a resource alone when any container already has it in its requests or limits."""
    for container in containers:
        resources = container.get("resources") or {}
        if resource in (resources.get("requests") or {}) or resource in (resources.get("limits") or {}):
            return True
    return False


def pointer_key(key: str) -> str:
    """A map key as one JSON-pointer token (RFC 6901): `openshift.io/mlxnics` → `openshift.io~1mlxnics`."""
    return key.replace("~", "~0").replace("/", "~1")


def _resource_patch(container: Mapping[str, Any], added: Mapping[str, int]) -> Patch:
    if not added:
        return []
    base = "/spec/containers/0/resources"
    resources = container.get("resources")
    patch: Patch = [] if isinstance(resources, dict) else [{"op": "add", "path": base, "value": {}}]
    for field in ("requests", "limits"):
        if not (resources or {}).get(field):
            patch.append({"op": "add", "path": f"{base}/{field}", "value": {}})
    for resource, count in added.items():
        for field in ("requests", "limits"):
            patch.append({"op": "add", "path": f"{base}/{field}/{pointer_key(resource)}", "value": str(count)})
    return patch


def _podnetinfo_patch(pod: Mapping[str, Any], containers: Sequence[Mapping[str, Any]]) -> Patch:
    """Upstream `createVolPatch`: the downward-API volume and its read-only mount in each container."""
    patch: Patch = []
    mount = {"name": PODNETINFO_VOLUME, "readOnly": True, "mountPath": PODNETINFO_MOUNT_PATH}
    for index, container in enumerate(containers):
        mounts = container.get("volumeMounts") or []
        if any(m.get("name") == PODNETINFO_VOLUME for m in mounts):
            continue
        if not mounts:
            patch.append({"op": "add", "path": f"/spec/containers/{index}/volumeMounts", "value": []})
        patch.append({"op": "add", "path": f"/spec/containers/{index}/volumeMounts/-", "value": mount})
    volumes = (pod.get("spec") or {}).get("volumes") or []
    if any(v.get("name") == PODNETINFO_VOLUME for v in volumes):
        return patch
    if not volumes:
        patch.append({"op": "add", "path": "/spec/volumes", "value": []})
    metadata = pod.get("metadata") or {}
    items = [{"path": path, "fieldRef": {"fieldPath": f"metadata.{path}"}}
             for path in ("labels", "annotations") if metadata.get(path)]
    patch.append({"op": "add", "path": "/spec/volumes/-",
                  "value": {"name": PODNETINFO_VOLUME, "downwardAPI": {"items": items}}})
    return patch
