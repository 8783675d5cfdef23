"""The Helm chart, rendered offline by Helm's own engine (helm-python-sdk, no helm binary): with default values it
is the plain manifests; its values reach every object they should; everything it renders is valid."""

from __future__ import annotations

import json

import helm_python as helm
import pytest
from deploy_support import (
    CHART,
    HELM_ONLY_LABELS,
    NAMESPACE,
    SAMPLE,
    Obj,
    by_key,
    container_of,
    containers,
    host_mounts,
    key,
    load,
    plain_objects,
    project_version,
    render_chart,
    validate,
    without_helm_labels,
)

from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS

DEFAULT = render_chart()
CUSTOM_VALUES: Obj = {
    "image": {"repository": "registry.example.com/net/vdpa-operator", "tag": "9.9.9", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "pull-secret"}],
    "namespace": {"name": "net-ops"},
    "resourcePrefix": "example.com",
    "devMode": True,
    "staleNodeStateCleanupDelayMinutes": 0,
    "operator": {"replicas": 2, "nodeSelector": {"node-role.kubernetes.io/control-plane": ""}},
    "configDaemon": {"nodeSelector": {"kubernetes.io/os": "linux", "feature.example.com/vdpa": "true"}},
    "cni": {"binDir": "/var/lib/cni/bin", "resources": {"requests": {"cpu": "20m", "memory": "96Mi"}}},
    "devicePlugin": {"nodeSelector": {"sriovnetwork.openshift.io/device-plugin": "Enabled", "pool": "a"}},
    "supportedExtraNICs": {"MyNIC": "8086 1521 1520"},
    "sriovOperatorConfig": {"deploy": True},
}
CUSTOM = render_chart(CUSTOM_VALUES, release_namespace="tooling")
LINT_WARNING = 2
"""helm lint severities: 1 info, 2 warning, 3 error."""


def _one(objects: list[Obj], kind: str, name: str) -> Obj:
    [obj] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def _env(workload: Obj) -> dict[str, str]:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _args(workload: Obj, container: str | None = None) -> list[str]:
    return list(container_of(workload, container)["args"])


def test_default_values_render_exactly_the_plain_manifests() -> None:
    """Same objects, field for field, once Helm's bookkeeping labels are set aside (the sample config is opt-in)."""
    chart = by_key([without_helm_labels(o) for o in DEFAULT])
    plain = by_key(plain_objects(sample=False))
    assert sorted(chart) == sorted(plain)
    different = [k for k in plain if chart[k] != plain[k]]
    assert not different, f"chart and deploy/ differ in {different}"


def test_helm_labels_are_the_only_difference_and_on_every_template() -> None:
    crd_names = {key(o) for o in DEFAULT if o["kind"] == "CustomResourceDefinition"}
    for obj in DEFAULT:
        labels = obj["metadata"].get("labels", {})
        if key(obj) in crd_names:
            assert not HELM_ONLY_LABELS & labels.keys(), "Helm installs crds/ as they are"
        else:
            assert labels["app.kubernetes.io/managed-by"] == "Helm", key(obj)
            assert labels["helm.sh/chart"] == f"vdpa-operator-{project_version()}"


def test_the_operator_config_is_the_sample_when_asked_for() -> None:
    assert not [o for o in DEFAULT if o["kind"] == "SriovOperatorConfig"]
    rendered = render_chart({"sriovOperatorConfig": {"deploy": True}})
    [config] = [o for o in rendered if o["kind"] == "SriovOperatorConfig"]
    assert config == load(SAMPLE)[0]


@pytest.mark.parametrize("obj", CUSTOM, ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_everything_rendered_with_other_values_is_valid(obj: Obj) -> None:
    validate(obj)


def test_the_namespace_value_reaches_every_reference() -> None:
    """Objects, binding subjects, the webhooks' service: nothing is left in the default namespace."""
    assert NAMESPACE not in json.dumps(CUSTOM)
    assert _one(CUSTOM, "Namespace", "net-ops")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "privileged")
    namespaced = [o for o in CUSTOM if "namespace" in o["metadata"]]
    assert {o["metadata"]["namespace"] for o in namespaced} == {"net-ops"}
    assert len(namespaced) == len([o for o in DEFAULT if "namespace" in o["metadata"]]) + 1  # + the config


def test_image_settings_reach_every_container() -> None:
    workloads = [o for o in CUSTOM if o["kind"] in {"Deployment", "DaemonSet"}]
    assert len(workloads) == 3
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "pull-secret"}]
        for container in containers(workload):
            assert container["image"] == "registry.example.com/net/vdpa-operator:9.9.9"
            assert container["imagePullPolicy"] == "Always"


def test_operator_settings_reach_the_components() -> None:
    operator = _one(CUSTOM, "Deployment", "vdpa-operator")
    assert operator["spec"]["replicas"] == 2
    assert operator["spec"]["template"]["spec"]["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    env = _env(operator)
    assert (env["RESOURCE_PREFIX"], env["STALE_NODE_STATE_CLEANUP_DELAY_MINUTES"], env["DEV_MODE"]) == (
        "example.com", "0", "TRUE")
    daemon = _one(CUSTOM, "DaemonSet", "vdpa-config-daemon")
    assert "--dev-mode" in _args(daemon, "config-daemon")
    assert "--dev-mode" not in _args(daemon, "cni-server"), "not an option of `vdpactl cni-server`"
    assert daemon["spec"]["template"]["spec"]["nodeSelector"] == CUSTOM_VALUES["configDaemon"]["nodeSelector"]
    plugin = _one(CUSTOM, "DaemonSet", "vdpa-device-plugin")
    assert "--resource-prefix=example.com" in _args(plugin)
    # Helm merges a map value into the chart's default map: the default keys stay unless set to null.
    default_selector = _one(DEFAULT, "DaemonSet", "vdpa-device-plugin")["spec"]["template"]["spec"]["nodeSelector"]
    assert plugin["spec"]["template"]["spec"]["nodeSelector"] == {
        **default_selector, **CUSTOM_VALUES["devicePlugin"]["nodeSelector"]}
    dropped = render_chart({"devicePlugin": {"nodeSelector": {"kubernetes.io/os": None}}})
    assert _one(dropped, "DaemonSet", "vdpa-device-plugin")["spec"]["template"]["spec"]["nodeSelector"] == {
        "sriovnetwork.openshift.io/device-plugin": "Enabled"}


def test_the_cni_bin_dir_value_reaches_the_installer_and_the_server() -> None:
    """Another CNI bin directory (CRI-O on OpenShift uses /var/lib/cni/bin): the shim is installed there, and the
    server finds IPAM plugins there at the same path, as the runtime's CNI_PATH names it."""
    daemon = _one(CUSTOM, "DaemonSet", "vdpa-config-daemon")
    assert _args(daemon, "install-cni") == ["install-cni", "--cni-bin-dir=/host/var/lib/cni/bin"]
    assert host_mounts(daemon, "install-cni") == {"/host/var/lib/cni/bin": ("/var/lib/cni/bin", False)}
    server = host_mounts(daemon, "cni-server")
    assert server["/var/lib/cni/bin"] == ("/var/lib/cni/bin", True)
    assert "/opt/cni/bin" not in json.dumps(daemon)
    assert container_of(daemon, "cni-server")["resources"] == CUSTOM_VALUES["cni"]["resources"]


def test_extra_nics_are_added_to_the_builtin_table() -> None:
    data = _one(CUSTOM, "ConfigMap", "supported-nic-ids")["data"]
    builtin = _one(DEFAULT, "ConfigMap", "supported-nic-ids")["data"]
    assert len(builtin) == len(DEFAULT_SUPPORTED_NICS.entries)
    assert data == {**builtin, "MyNIC": "8086 1521 1520"}


def test_an_existing_namespace_is_not_created() -> None:
    rendered = render_chart({"namespace": {"name": "net-ops", "create": False}})
    assert not [o for o in rendered if o["kind"] == "Namespace"]
    assert len(rendered) == len(DEFAULT) - 1


@pytest.mark.parametrize("values", [None, CUSTOM_VALUES], ids=["defaults", "custom"])
def test_helm_lint_finds_no_warning(values: Obj | None) -> None:
    """`helm lint --strict`; informational findings (no icon) are fine."""
    report = helm.lint(CHART, values, strict=True, namespace="tooling")
    serious = [m for m in report["messages"] if m["severity"] >= LINT_WARNING]
    assert not serious and not report["errors"], report
