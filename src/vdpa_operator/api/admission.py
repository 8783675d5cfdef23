"""Admission of the operator's kinds: the mutating and validating webhook rules of upstream `pkg/webhook`.

Rejection messages are upstream's text verbatim, because users and scripts match on them; each comes with the
JSON path of the offending field and a one-sentence fix. Unlike upstream, which stops at the first failure,
every independent rule is reported, so a user can fix a manifest in one pass; whether an object is admitted is
always upstream's decision.

Everything here is pure: what the dynamic rules need from the cluster is passed in as a `ClusterView`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vdpa_operator.api import golang
from vdpa_operator.api.jsonpatch import apply_json_patch
from vdpa_operator.api.kube import Node
from vdpa_operator.api.meta import Resource
from vdpa_operator.api.models import (
    DEFAULT_NAME,
    SYNC_IN_PROGRESS,
    InterfaceExt,
    OVSNetwork,
    SriovIBNetwork,
    SriovNetwork,
    SriovNetworkNicSelector,
    SriovNetworkNodePolicy,
    SriovNetworkNodeState,
    SriovNetworkPoolConfig,
    SriovOperatorConfig,
)
from vdpa_operator.api.nics import (
    DEFAULT_SUPPORTED_NICS,
    INTEL_VENDOR,
    MELLANOX_VENDOR,
    MLX_MAX_VFS,
    SupportedNics,
)
from vdpa_operator.api.selection import (
    PfName,
    VfRangeError,
    nic_mismatch,
    node_selected,
    parse_pf_name,
    pf_base_name,
    resolve_interface_name,
)
from vdpa_operator.errors import VdpaOperatorError

DEFAULT_NAMESPACE = "openshift-sriov-network-operator"

VDPA_TYPES = ("virtio", "vhost")
VIRTUAL_PLATFORMS = ("openstack", "aws")
"""Upstream `vars.PlatformsMap`: a node whose providerID names one of these runs VFs passed into a VM."""

RESOURCE_NAME_MAX_LEN = 63
_RESOURCE_NAME = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?")


class Operation(enum.StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True)
class Settings:
    """How the webhook is deployed: upstream reads these from its environment and the supported-NIC list."""

    namespace: str = DEFAULT_NAMESPACE
    dev_mode: bool = False
    """Upstream `DEV_MODE=TRUE`: admit vendors/devices missing from the supported list (static check only)."""
    nics: SupportedNics = DEFAULT_SUPPORTED_NICS


@dataclass(frozen=True)
class ClusterView:
    """What the dynamic rules read from the cluster; the caller gathers it."""

    nodes: tuple[Node, ...] = ()
    node_states: tuple[SriovNetworkNodeState, ...] = ()
    policies: tuple[SriovNetworkNodePolicy, ...] = ()
    """Existing policies, any namespace: only those in the operator namespace count, as upstream lists."""
    operator_config: SriovOperatorConfig | None = None
    """The stored `default` SriovOperatorConfig, the previous value for the disableDrain transition rule."""


@dataclass(frozen=True)
class Problem:
    field: str
    """JSON path of the offending field, e.g. "spec.nicSelector.pfNames[0]"."""
    message: str
    """Upstream's message, verbatim."""
    fix: str
    """What the user should change, in one sentence."""

    def __str__(self) -> str:
        return f"{self.message} ({self.field}: {self.fix})"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    errors: tuple[Problem, ...] = ()
    warnings: tuple[str, ...] = ()
    patch: tuple[dict[str, Any], ...] = ()
    """RFC 6902 operations of the mutation."""


def _verdict(problems: Iterable[Problem], warnings: Iterable[str] = ()) -> Verdict:
    errors = tuple(problems)
    return Verdict(allowed=not errors, errors=errors, warnings=tuple(warnings))


def _equal_fold(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


# --- Mutation -----------------------------------------------------------------------------------------------


def mutate_policy(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch upstream's mutating webhook returns for a policy, judged on key presence in `raw`.

    Presence matters, not value: an explicit `priority: 0` is kept while an absent one becomes 99 (lowest).
    """
    metadata = raw.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    spec = raw.get("spec")
    if name == DEFAULT_NAME or not isinstance(spec, Mapping):
        return []
    ops: list[dict[str, Any]] = []
    if "priority" not in spec:
        ops.append({"op": "add", "path": "/spec/priority", "value": 99})
    if "isRdma" not in spec:
        ops.append({"op": "add", "path": "/spec/isRdma", "value": False})
    link_type = spec.get("linkType")
    device_type = spec.get("deviceType")
    if (
        isinstance(link_type, str)
        and _equal_fold(link_type, "ib")
        and not _equal_fold(device_type if isinstance(device_type, str) else "", "vfio-pci")
    ):
        # InfiniBand VFs need RDMA, except when passed to a VM (vfio-pci).
        ops.append({"op": "add", "path": "/spec/isRdma", "value": True})
    return ops


# --- Entry points -------------------------------------------------------------------------------------------


def admit(
    raw: Mapping[str, Any],
    obj: Resource,
    operation: Operation,
    cluster: ClusterView | None,
    settings: Settings = Settings(),
) -> tuple[Verdict, Resource]:
    """Mutation then validation, as the API server chains the two webhooks: the verdict, and the object as
    it would be stored if allowed.

    Policies are validated as mutated (with priority and isRdma defaulted). Upstream registers the mutating
    webhook for CREATE and UPDATE only, so a DELETE gets no patch.
    """
    if not isinstance(obj, SriovNetworkNodePolicy) or operation == Operation.DELETE:
        return validate(obj, operation, cluster, settings), obj
    patch = mutate_policy(raw)
    patched = type(obj).model_validate(apply_json_patch(raw, patch), by_name=False)
    return replace(validate(patched, operation, cluster, settings), patch=tuple(patch)), patched


def validate(
    obj: Resource,
    operation: Operation,
    cluster: ClusterView | None,
    settings: Settings = Settings(),
) -> Verdict:
    """Upstream's validating webhook for one object. With `cluster` None only the rules that need no cluster
    data run (static policy rules; no node, NIC, conflict or disableDrain-transition checks)."""
    if isinstance(obj, SriovNetworkNodePolicy):
        return _validate_policy(obj, operation, cluster, settings)
    if isinstance(obj, SriovOperatorConfig):
        return _validate_operator_config(obj, operation, cluster, settings)
    if isinstance(obj, SriovNetworkPoolConfig):
        return _verdict(pool_config_problems(obj))
    if isinstance(obj, SriovNetwork | SriovIBNetwork | OVSNetwork):
        return _verdict(_network_namespace_problems(obj, settings))
    return Verdict(allowed=True)


# --- SriovNetworkNodePolicy ---------------------------------------------------------------------------------


def _validate_policy(
    policy: SriovNetworkNodePolicy, operation: Operation, cluster: ClusterView | None, settings: Settings
) -> Verdict:
    if policy.name == DEFAULT_NAME and policy.namespace == settings.namespace:
        return Verdict(allowed=True)  # the deprecated default policy is never checked
    warnings = []
    if policy.namespace != settings.namespace:
        warnings.append(
            policy.name + f" is created or updated but not used. Only policy in {settings.namespace} "
            "namespace is respected."
        )
    if operation == Operation.DELETE:
        return _verdict((), warnings)
    problems = static_policy_problems(policy, settings)
    if not problems and cluster is not None:
        problems = dynamic_policy_problems(policy, cluster, settings)
    return _verdict(problems, warnings)


def resource_name_problem(resource_name: str) -> Problem | None:
    """The device-plugin resource name must be a DNS-label-like name (underscores kept for compatibility)."""
    where = "spec.resourceName"
    if resource_name == "":
        return Problem(where, "resource name must not be empty", "set resourceName, e.g. mlxnics")
    if len(resource_name) > RESOURCE_NAME_MAX_LEN:
        return Problem(
            where,
            f"resource name {golang.quote(resource_name)} must be no more than {RESOURCE_NAME_MAX_LEN} "
            "characters",
            f"shorten resourceName to at most {RESOURCE_NAME_MAX_LEN} characters",
        )
    if not _RESOURCE_NAME.fullmatch(resource_name):
        return Problem(
            where,
            f"resource name {golang.quote(resource_name)} is invalid: must consist of alphanumeric characters "
            "or hyphens, and must start and end with an alphanumeric character (e.g. 'myresource', "
            "'net-device-1'), see https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names",
            "use only letters, digits, '-' and '_', starting and ending with a letter or digit",
        )
    return None


def static_policy_problems(
    policy: SriovNetworkNodePolicy, settings: Settings = Settings()
) -> tuple[Problem, ...]:
    """Upstream `staticValidateSriovNetworkNodePolicy`: the rules that need only the policy, each reported."""
    spec, selector, name = policy.spec, policy.spec.nic_selector, policy.name
    device_type, link_type = spec.device_type or "", spec.link_type or ""
    vdpa_type, eswitch_mode = spec.vdpa_type or "", spec.eswitch_mode or ""
    problems: list[Problem] = []

    def reject(where: str, message: str, fix: str) -> None:
        problems.append(Problem(where, message, fix))

    if (name_problem := resource_name_problem(spec.resource_name)) is not None:
        problems.append(name_problem)
    if selector.is_empty():
        reject(
            "spec.nicSelector",
            "at least one of these parameters (vendor, deviceID, pfNames, rootDevices or netFilter) has to "
            f"be defined in nicSelector in CR {name}",
            "select the PFs by vendor, deviceID, pfNames, rootDevices or netFilter",
        )
    if selector.net_filter:
        if selector.vendor or selector.device_id or selector.pf_names or selector.root_devices:
            reject(
                "spec.nicSelector",
                "nicSelector fields vendor, deviceID, pfNames, and rootDevices are not allowed when "
                "netFilter is specified",
                "select the PFs either by netFilter alone or by vendor, deviceID, pfNames and rootDevices",
            )
        if eswitch_mode:
            reject(
                "spec.eSwitchMode", "eSwitchMode is not supported when netFilter is specified",
                "remove eSwitchMode: VFs on a virtual platform cannot change eswitch mode",
            )
        if not spec.bridge.is_empty():
            reject(
                "spec.bridge", "bridge configuration is not supported when netFilter is specified",
                "remove bridge, or select the PFs without netFilter",
            )
        if link_type and not _equal_fold(link_type, "eth"):
            reject(
                "spec.linkType",
                f"linkType {golang.quote(link_type)} is not allowed when netFilter is specified, only 'eth' or "
                "'ETH' are supported",
                "set linkType: eth or remove it",
            )
    if not settings.dev_mode:
        problems.extend(_supported_nic_problems(selector, settings.nics))
    if (range_problem := _pf_names_range_problem(selector.pf_names, spec.num_vfs)) is not None:
        problems.append(range_problem)
    if device_type == "vfio-pci" and spec.is_rdma:
        # RoCE: on bare metal netdevice + isRdma; in a VM vfio-pci without isRdma.
        reject(
            "spec.isRdma",
            "'deviceType: vfio-pci' conflicts with 'isRdma: true'; Set 'deviceType' to (string)'netdevice' "
            "Or Set 'isRdma' to (bool)'false'",
            "set isRdma: false, or deviceType: netdevice for RDMA on the host",
        )
    if link_type and not _equal_fold(link_type, "eth") and eswitch_mode == "switchdev":
        reject(
            "spec.linkType", "'eSwitchMode: switchdev' can be used only with ethernet links",
            "set linkType: eth, or remove eSwitchMode: switchdev",
        )
    if device_type != "netdevice" and vdpa_type in VDPA_TYPES:
        # The literal comparison means an absent deviceType conflicts too, unless CRD defaulting filled it in.
        reject(
            "spec.deviceType",
            f"'deviceType: {device_type}' conflicts with '{vdpa_type}'; Set 'deviceType' to "
            "(string)'netdevice' Or Remove 'vdpaType'",
            "set deviceType: netdevice or remove vdpaType",
        )
    if vdpa_type in VDPA_TYPES and eswitch_mode != "switchdev":
        reject(
            "spec.eSwitchMode", "vdpa requires the device to be configured in switchdev mode",
            "set eSwitchMode: switchdev",
        )
    if not spec.bridge.is_empty() and eswitch_mode != "switchdev":
        reject(
            "spec.eSwitchMode",
            "software bridge management requires the device to be configured in switchdev mode",
            "set eSwitchMode: switchdev, or remove bridge",
        )
    if not spec.bridge.is_empty() and spec.externally_managed:
        reject(
            "spec.externallyManaged",
            "software bridge management can't be used when the device externally managed",
            "remove bridge, or set externallyManaged: false",
        )
    return tuple(problems)


def _supported_nic_problems(selector: SriovNetworkNicSelector, nics: SupportedNics) -> list[Problem]:
    """The selector must name NICs from the supported list (upstream skips this in DEV_MODE)."""
    fix = "select a NIC model from the supported NIC list (supported-nic-ids ConfigMap), or enable dev mode"
    if selector.vendor:
        if not nics.is_supported_vendor(selector.vendor):
            return [Problem("spec.nicSelector.vendor", f"vendor {selector.vendor} is not supported", fix)]
        if selector.device_id and not nics.is_supported_model(selector.vendor, selector.device_id):
            return [Problem(
                "spec.nicSelector.deviceID",
                f"vendor/device {selector.vendor}/{selector.device_id} is not supported", fix,
            )]
    elif selector.device_id and not nics.is_supported_device(selector.device_id):
        return [Problem("spec.nicSelector.deviceID", f"device {selector.device_id} is not supported", fix)]
    return []


def _pf_names_range_problem(pf_names: Sequence[str], num_vfs: int) -> Problem | None:
    """Upstream's strict `name#start-end` syntax check; like upstream it stops at the first bad entry.

    Stricter than `selection.parse_pf_name`: exactly one '#' and one '-', and the range must fit in numVfs.
    """
    for index, entry in enumerate(pf_names):
        if "#" not in entry:
            continue
        where = f"spec.nicSelector.pfNames[{index}]"
        fix = "write the entry as <pf-name>#<first-vf>-<last-vf>, e.g. ens1f0#0-3"
        fields = entry.split("#")
        if len(fields) != 2:
            return Problem(
                where,
                f"failed to parse {entry} PF name in nicSelector, probably incorrect separator character "
                "usage",
                fix,
            )
        bounds = fields[1].split("-")
        if len(bounds) != 2:
            return Problem(
                where,
                f"failed to parse {entry} PF name nicSelector, probably incorrect range character usage",
                fix,
            )
        try:
            start = golang.atoi(bounds[0])
        except ValueError:
            return Problem(
                where, f"failed to parse {entry} PF name nicSelector, start range is incorrect", fix
            )
        try:
            end = golang.atoi(bounds[1])
        except ValueError:
            return Problem(
                where, f"failed to parse {entry} PF name nicSelector, end range is incorrect", fix
            )
        if end < start:
            return Problem(
                where,
                f"failed to parse {entry} PF name nicSelector, end range shall not be smaller than start "
                "range",
                "put the smaller VF index first in the range",
            )
        if not end < num_vfs:
            return Problem(
                where,
                f"failed to parse {entry} PF name nicSelector, end range exceeds the maximum VF index ",
                f"end the range at most at VF index numVfs-1 ({num_vfs - 1}), or raise numVfs",
            )
    return None


def dynamic_policy_problems(
    policy: SriovNetworkNodePolicy, cluster: ClusterView, settings: Settings = Settings()
) -> tuple[Problem, ...]:
    """Upstream `dynamicValidateSriovNetworkNodePolicy`: the policy against the nodes it selects, their
    observed PFs, and the other policies on those nodes. Problems from all nodes are reported once each."""
    name = policy.name
    states: dict[str, SriovNetworkNodeState] = {}
    for candidate in _operator_node_states(cluster, settings):
        states.setdefault(candidate.name, candidate)  # upstream takes the first state with the node's name
    # Upstream compares with every listed policy but one of the same name (itself, when it is an update).
    others = [p for p in cluster.policies if p.namespace == settings.namespace and p.name != name]

    problems: list[Problem] = []
    any_node = any_nic = False
    for node in cluster.nodes:
        if not node_selected(policy.spec.node_selector, node.labels):
            continue
        any_node = True
        state = states.get(node.name)
        if state is not None:
            check = check_policy_on_node(policy, state, node, settings)
            any_nic = any_nic or check.selected
            problems.extend(check.problems)
        for other in others:
            if node_selected(other.spec.node_selector, node.labels):
                problems.extend(policy_conflicts(policy, other, state))

    if not any_node:
        return (Problem(
            "spec.nodeSelector", f"no matched node is selected by the nodeSelector in CR {name}",
            "change nodeSelector to labels that at least one node carries (empty selects every node)",
        ),)
    if not any_nic:
        problems.append(Problem(
            "spec.nicSelector", f"no supported NIC is selected by the nicSelector in CR {name}",
            "select a PF of a supported NIC model listed in status.interfaces of a selected node's "
            "SriovNetworkNodeState",
        ))
    return _unique_messages(problems)


def _operator_node_states(cluster: ClusterView, settings: Settings) -> list[SriovNetworkNodeState]:
    """Node states in the operator namespace, the only ones upstream lists (no namespace counts as it)."""
    return [s for s in cluster.node_states if (s.namespace or settings.namespace) == settings.namespace]


def _unique_messages(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    seen: set[str] = set()
    unique = []
    for problem in problems:
        if problem.message not in seen:
            seen.add(problem.message)
            unique.append(problem)
    return tuple(unique)


@dataclass(frozen=True)
class NodeCheck:
    """The policy against one node's observed PFs."""

    selected: bool
    """Some PF of the node is selected by the nicSelector and is a supported model."""
    problems: tuple[Problem, ...] = ()
    not_selected: tuple[str, ...] = ()
    """Why each PF was not selected (upstream only logs these)."""


def _on_virtual_platform(node: Node) -> bool:
    provider = node.spec.provider_id.lower()
    return any(platform in provider for platform in VIRTUAL_PLATFORMS)


def nic_model_rejection(
    selector: SriovNetworkNicSelector, iface: InterfaceExt, node: Node, nics: SupportedNics
) -> str | None:
    """Why a PF is not selected, or None when it is (upstream `validateNicModel`).

    Unlike `selection.nic_selected`, netFilter is ignored here except on virtual platforms, where it lets a
    supported VF (the PF itself being a VF passed into the VM) be selected.
    """
    reason = nic_mismatch(selector, iface)
    if reason is not None:
        return reason
    if nics.is_supported_model(iface.vendor, iface.device_id):
        return None
    if (
        _on_virtual_platform(node)
        and selector.net_filter
        and selector.net_filter == iface.net_filter
        and nics.is_vf_supported_model(iface.vendor, iface.device_id)
    ):
        return None
    return "vendor and device ID is not in supported list"


def check_policy_on_node(
    policy: SriovNetworkNodePolicy, state: SriovNetworkNodeState, node: Node, settings: Settings = Settings()
) -> NodeCheck:
    """Upstream `validatePolicyForNodeState`: numVfs, externally-managed and vDPA rules per selected PF."""
    spec = policy.spec
    selected = False
    problems: list[Problem] = []
    not_selected: list[str] = []
    for iface in state.status.interfaces:
        reason = nic_model_rejection(spec.nic_selector, iface, node, settings.nics)
        if reason is not None:
            not_selected.append(
                f"Interface: {iface.name} was not selected, since NIC model could not be validated due to "
                f"the following error: {reason}"
            )
            continue
        selected = True
        problems.extend(_selected_pf_problems(policy, iface))
    return NodeCheck(selected, _unique_messages(problems), tuple(not_selected))


def _selected_pf_problems(policy: SriovNetworkNodePolicy, iface: InterfaceExt) -> list[Problem]:
    spec, name = policy.spec, policy.name
    problems: list[Problem] = []
    if name != DEFAULT_NAME and spec.num_vfs == 0:
        problems.append(Problem(
            "spec.numVfs", f"numVfs({spec.num_vfs}) in CR {name} is not allowed", "set numVfs to 1 or more",
        ))
    limit = {INTEL_VENDOR: iface.total_vfs, MELLANOX_VENDOR: MLX_MAX_VFS}.get(iface.vendor)
    if limit is not None and spec.num_vfs > limit:
        # Mellanox firmware can raise totalvfs, so upstream checks those against a fixed maximum instead.
        problems.append(Problem(
            "spec.numVfs",
            f"numVfs({spec.num_vfs}) in CR {name} exceed the maximum allowed value({limit}) "
            f"interface({iface.name})",
            f"lower numVfs to at most {limit}",
        ))
    if spec.externally_managed:
        if spec.num_vfs > iface.num_vfs:
            problems.append(Problem(
                "spec.numVfs",
                f"numVfs({spec.num_vfs}) in CR {name} is higher than the virtual functions allocated for the "
                f"PF externally value({iface.num_vfs})",
                f"lower numVfs to at most the {iface.num_vfs} VFs present on {iface.name}, or create more",
            ))
        if spec.mtu != 0 and spec.mtu > iface.mtu:
            problems.append(Problem(
                "spec.mtu",
                f"MTU({spec.mtu}) in CR {name} is higher than the MTU for the PF externally "
                f"value({iface.mtu})",
                f"lower mtu to at most {iface.mtu}, or raise the MTU of {iface.name} on the host",
            ))
        link_type = spec.link_type or ""
        if link_type and not _equal_fold(link_type, iface.link_type):
            problems.append(Problem(
                "spec.linkType",
                f"LinkType({link_type}) in CR {name} is not equal to the LinkType for the PF externally "
                f"value({iface.link_type})",
                f"set linkType to {iface.link_type} or remove it",
            ))
    if (spec.vdpa_type or "") in VDPA_TYPES and iface.vendor != MELLANOX_VENDOR:
        problems.append(Problem(
            "spec.nicSelector",
            f"vendor({iface.vendor}) in CR {name} not supported for vdpa interface({iface.name})",
            f"select only NVIDIA/Mellanox (vendor {MELLANOX_VENDOR}) PFs, the only ones that support vDPA, "
            "or remove vdpaType",
        ))
    return problems


def policy_conflicts(
    current: SriovNetworkNodePolicy, existing: SriovNetworkNodePolicy, state: SriovNetworkNodeState | None
) -> tuple[Problem, ...]:
    """Upstream `validatePolicyForNodePolicy`: `current` against one existing policy on the same node.

    `state` (the node's state, if any) resolves alternative PF names to the real ones.
    """
    if current.name == existing.name:
        return ()
    checks = (
        _pf_names_conflict(current, existing, state),
        _root_devices_conflict(current, existing),
        _exclude_topology_conflict(current, existing),
    )
    return tuple(problem for problem in checks if problem is not None)


def _lenient_pf_name(entry: str) -> PfName:
    """An existing policy's pfNames entry; upstream ignores its parse error (it was checked when admitted)."""
    try:
        return parse_pf_name(entry)
    except VfRangeError:
        return PfName(pf_base_name(entry))


def _pf_names_conflict(
    current: SriovNetworkNodePolicy, existing: SriovNetworkNodePolicy, state: SriovNetworkNodeState | None
) -> Problem | None:
    """The first pair of entries naming the same PF decides, as upstream returns on it (later pairs are not
    checked). An entry without a range is (-1, -1): two unranged policies overlap, ranged + unranged don't."""
    for index, entry in enumerate(current.spec.nic_selector.pf_names):
        where = f"spec.nicSelector.pfNames[{index}]"
        try:
            mine = parse_pf_name(entry)
        except VfRangeError:
            return Problem(where, f"invalid PF name: {entry}", "write the entry as <pf-name>[#<a>-<b>]")
        my_pf = resolve_interface_name(mine.name, state)
        for other_entry in existing.spec.nic_selector.pf_names:
            theirs = _lenient_pf_name(other_entry)
            if my_pf != resolve_interface_name(theirs.name, state):
                continue
            if current.spec.externally_managed != existing.spec.externally_managed:
                return Problem(
                    "spec.externallyManaged",
                    f"externallyManage is inconsistent with existing policy {existing.name}",
                    f"set externallyManaged: {golang.bool_text(existing.spec.externally_managed)} as in policy "
                    f"{existing.name}, which uses the same PF",
                )
            if mine.end < theirs.start or mine.start > theirs.end:
                return None
            return Problem(
                where, f"VF index range in {entry} is overlapped with existing policy {existing.name}",
                f"give both policies disjoint VF ranges on this PF (e.g. {mine.name}#0-1 and #2-3), "
                f"as policy {existing.name} uses it too",
            )
    return None


def _root_devices_conflict(
    current: SriovNetworkNodePolicy, existing: SriovNetworkNodePolicy
) -> Problem | None:
    """Root devices have no VF ranges: the same PCI address in two policies is always a conflict."""
    for index, device in enumerate(current.spec.nic_selector.root_devices):
        if device in existing.spec.nic_selector.root_devices:
            return Problem(
                f"spec.nicSelector.rootDevices[{index}]",
                f"root device {device} is overlapped with existing policy {existing.name}",
                f"remove {device} here or from policy {existing.name}; to share a PF, select it by pfNames "
                "with disjoint VF ranges",
            )
    return None


def _exclude_topology_conflict(
    current: SriovNetworkNodePolicy, existing: SriovNetworkNodePolicy
) -> Problem | None:
    """One device-plugin resource has one excludeTopology setting."""
    mine, theirs = current.spec.exclude_topology, existing.spec.exclude_topology
    if current.spec.resource_name != existing.spec.resource_name or mine == theirs:
        return None
    return Problem(
        "spec.excludeTopology",
        f"excludeTopology[{golang.bool_text(mine)}] field conflicts with policy [{existing.name}].ExcludeTopology"
        f"[{golang.bool_text(theirs)}] as they target the same resource[{current.spec.resource_name}]",
        f"set excludeTopology: {golang.bool_text(theirs)} as in policy {existing.name}, or use another resourceName",
    )


# --- SriovOperatorConfig ------------------------------------------------------------------------------------


def _validate_operator_config(
    config: SriovOperatorConfig, operation: Operation, cluster: ClusterView | None, settings: Settings
) -> Verdict:
    if operation == Operation.DELETE:
        return Verdict(allowed=True)
    if config.name != DEFAULT_NAME or config.namespace != settings.namespace:
        return _verdict((Problem(
            "metadata.name" if config.name != DEFAULT_NAME else "metadata.namespace",
            f"only default SriovOperatorConfig in {settings.namespace} namespace is used",
            f"name it {DEFAULT_NAME} in namespace {settings.namespace}",
        ),))
    warnings = []
    if config.spec.disable_drain:
        warnings.append(
            "Node draining is disabled for applying SriovNetworkNodePolicy, it may result in workload "
            "interruption."
        )
    problems = () if cluster is None else _disable_drain_problems(config, cluster, settings)
    return _verdict(problems, warnings)


def _disable_drain_problems(
    config: SriovOperatorConfig, cluster: ClusterView, settings: Settings
) -> tuple[Problem, ...]:
    """Turning drain off while a node is updating would leave that node cordoned: the operator uncordons only
    at the end of a drained update."""
    previous = cluster.operator_config
    if not config.spec.disable_drain or previous is None or previous.spec.disable_drain:
        return ()
    for state in _operator_node_states(cluster, settings):
        if state.status.sync_status == SYNC_IN_PROGRESS:
            return (Problem(
                "spec.disableDrain",
                f"can't set Spec.DisableDrain = true while node[{state.name}] is updating",
                f"wait until node {state.name} has finished updating (syncStatus Succeeded), then retry",
            ),)
    return ()


# --- SriovNetworkPoolConfig ---------------------------------------------------------------------------------


class MaxUnavailableError(VdpaOperatorError, ValueError):
    """An invalid `maxUnavailable`; the text is upstream's."""


def max_unavailable(spec_value: int | str | None, num_nodes: int) -> int:
    """How many nodes of a pool may be drained at once (upstream `SriovNetworkPoolConfig.MaxUnavailable`).

    None means no limit (-1). "N%" is N percent of `num_nodes`, rounded down, so "30%" of 1 node is 0.
    """
    if spec_value is None:
        return -1
    if isinstance(spec_value, str):
        if not spec_value.endswith("%"):
            raise MaxUnavailableError("invalid type: strings needs to be a percentage")
        try:
            percent = golang.atoi(spec_value[:-1])
        except ValueError as err:
            raise MaxUnavailableError(f"invalid value {golang.quote(spec_value)}: {err}") from None
        if not 1 <= percent <= 100:
            raise MaxUnavailableError("invalid value: percentage needs to be between 1 and 100")
        scaled = percent * num_nodes // 100
    else:
        scaled = spec_value
    if scaled < 0:
        raise MaxUnavailableError("negative number is not allowed")
    return scaled


def pool_config_problems(pool: SriovNetworkPoolConfig) -> tuple[Problem, ...]:
    """Upstream `validateSriovNetworkPoolConfig` (which, unlike the others, runs on DELETE too)."""
    spec = pool.spec
    problems = []
    parallel_drain = spec.max_unavailable is not None or spec.node_selector is not None
    if parallel_drain and spec.ovs_hardware_offload_config.name:
        problems.append(Problem(
            "spec.ovsHardwareOffloadConfig.name",
            "SriovOperatorConfig can't have both parallel configuration and OvsHardwareOffloadConfig",
            "use separate pool configs for parallel draining (maxUnavailable/nodeSelector) and OVS offload",
        ))
    if spec.max_unavailable is not None:
        try:
            max_unavailable(spec.max_unavailable, 0)
        except MaxUnavailableError as err:
            problems.append(Problem(
                "spec.maxUnavailable", f"SriovOperatorConfig invalid maxUnavailable: {err}",
                'set maxUnavailable to a number of nodes (0 or more) or a percentage from "1%" to "100%"',
            ))
    return tuple(problems)


# --- Network kinds ------------------------------------------------------------------------------------------


def _network_namespace_problems(
    network: SriovNetwork | SriovIBNetwork | OVSNetwork, settings: Settings
) -> tuple[Problem, ...]:
    """Only networks in the operator namespace may place their NetworkAttachmentDefinition elsewhere."""
    if network.namespace == settings.namespace or not network.spec.network_namespace:
        return ()
    return (Problem(
        "spec.networkNamespace",
        f".Spec.NetworkNamespace field can't be specified if the resource is not in the {settings.namespace} "
        "namespace",
        f"remove networkNamespace (the attachment goes into {network.namespace or 'the same namespace'}), "
        f"or create the network in {settings.namespace}",
    ),)
