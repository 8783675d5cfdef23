"""The plain manifests in deploy/: current, valid against Kubernetes' schemas and ours, consistent with each other
and with the code they run."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from posixpath import dirname

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_support import (
    CHART,
    DEPLOY,
    NAMESPACE,
    ROOT,
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
    validate,
)

from project_scripts import gen_crds
from vdpa_operator import cli
from vdpa_operator.api.decoding import DecodeError, decode
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS, SupportedNics
from vdpa_operator.cli.cni import DEFAULT_SOCKET, DEFAULT_STATE, SHIM_NAME
from vdpa_operator.cni.spec import parse_config
from vdpa_operator.controller.service import OperatorOptions
from vdpa_operator.controller.webhook import (
    CONFIGURATION_NAME,
    LISTEN_PORT,
    SERVICE_NAME,
    SERVICE_PORT,
    webhook_configurations,
)
from vdpa_operator.daemon.store import DEFAULT_ROOT
from vdpa_operator.deviceplugin.settings import DEVICE_PLUGIN_DIR, DEVINFO_DIR, PLUGINS_REGISTRY
from vdpa_operator.host.linux.netns import NETNS_RUN_DIR
from vdpa_operator.host.linux.ovsdb import DEFAULT_REMOTE
from vdpa_operator.host.linux.udev import RULES_DIR
from vdpa_operator.render.deviceplugin import CONFIGMAP_NAME, DEVICE_PLUGIN_LABEL
from vdpa_operator.sim.apiserver.resources import NETWORK_ATTACHMENT_DEFINITION_CRD

OBJECTS = plain_objects()
EXAMPLE_NAD = ROOT / "examples" / "vdpa-cni-nad.yaml"
CNI_BIN_DIR = "/opt/cni/bin"
"""Where containerd and CRI-O look for CNI plugins by default, and what their CNI_PATH names."""
HOST_LOCAL_DATA_DIR = "/var/lib/cni/networks"
"""host-local's default dataDir: the IPAM plugin the server runs keeps its leases there."""
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}


def _one(kind: str, name: str) -> Obj:
    [obj] = [o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def _workloads() -> list[Obj]:
    return [o for o in OBJECTS if o["kind"] in {"Deployment", "DaemonSet"}]


def test_generated_files_are_current() -> None:
    """CRDs (deploy/crds and the chart's copy) and supported-nic-ids (deploy/ and the chart's copy)."""
    changes = gen_crds().plan_all()
    assert not changes, f"out of date: {', '.join(map(str, changes))}; run `make crds` and commit the result"


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_object_is_valid(obj: Obj) -> None:
    validate(obj)


def test_validation_rejects_what_a_cluster_would() -> None:
    """The check above can fail: a misspelt field, a wrong type, a CR outside its schema."""
    deployment = copy.deepcopy(_one("Deployment", "vdpa-operator"))
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        validate(deployment)
    daemonset = copy.deepcopy(_one("DaemonSet", "vdpa-config-daemon"))
    daemonset["spec"]["template"]["spec"]["hostPID"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(daemonset)
    config = copy.deepcopy(load(SAMPLE)[0])
    config["spec"]["logLevel"] = 7
    with pytest.raises(jsonschema.ValidationError, match="7"):
        validate(config)
    config = copy.deepcopy(load(SAMPLE)[0])
    config["spec"]["enableOperatorWebhok"] = True
    with pytest.raises(DecodeError, match="enableOperatorWebhok"):
        validate(config)


def test_kustomization_installs_every_manifest_but_the_sample() -> None:
    kubectl = Path(sys.executable).with_name("kubectl")
    built = subprocess.run([str(kubectl), "kustomize", str(DEPLOY)], capture_output=True, text=True, check=True,
                           timeout=60, env={**os.environ, "KUBECONFIG": os.devnull})
    objects = [o for o in yaml.safe_load_all(built.stdout) if o]
    assert by_key(objects) == by_key(plain_objects(sample=False))


def test_namespaced_objects_are_in_the_operator_namespace() -> None:
    assert _one("Namespace", NAMESPACE)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    for obj in OBJECTS:
        namespace = obj["metadata"].get("namespace")
        assert namespace == (None if obj["kind"] in CLUSTER_SCOPED else NAMESPACE), key(obj)
    for binding in (o for o in OBJECTS if o["kind"] in {"RoleBinding", "ClusterRoleBinding"}):
        assert {s["namespace"] for s in binding["subjects"]} == {NAMESPACE}, key(binding)


def test_supported_nic_ids_is_the_builtin_table() -> None:
    configmap = _one("ConfigMap", "supported-nic-ids")
    read = SupportedNics.from_configmap_data(configmap["data"], source="deploy/supported-nic-ids.yaml")
    assert read.entries == DEFAULT_SUPPORTED_NICS.entries
    assert [n.model for n in DEFAULT_SUPPORTED_NICS.entries if not n.model] == [], "every entry names its model"


def test_one_image_at_the_package_version() -> None:
    version = project_version()
    images = {c["image"] for o in _workloads() for c in containers(o)}
    assert images == {f"vdpa-operator:{version}"}
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (version, version)
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "vdpa-operator", "newName": "vdpa-operator", "newTag": version}]


def _command(args: list[str]) -> tuple[str, list[str]]:
    return args[0], args[1:]


@pytest.mark.parametrize("workload", _workloads(), ids=lambda o: o["metadata"]["name"])
def test_container_arguments_are_what_vdpactl_accepts(workload: Obj) -> None:
    """Each container's args parse with the real CLI (the image's entry point is `vdpactl`)."""
    for container in containers(workload):
        assert "command" not in container, "the image's ENTRYPOINT is vdpactl; give args only"
        name, rest = _command(container["args"])
        command = cli.main.get_command(click.Context(cli.main), name)
        if command is None:
            pytest.skip(f"`vdpactl {name}` does not exist yet; its arguments are checked once it does")
        command.make_context(name, list(rest))  # raises click.UsageError on an unknown option or a bad value


def test_selectors_services_and_webhooks_point_at_what_exists() -> None:
    accounts = {o["metadata"]["name"] for o in OBJECTS if o["kind"] == "ServiceAccount"}
    for workload in _workloads():
        pod = workload["spec"]["template"]
        assert pod["spec"]["serviceAccountName"] in accounts
        assert workload["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    service = _one("Service", SERVICE_NAME)
    operator_pod = _one("Deployment", "vdpa-operator")["spec"]["template"]
    assert service["spec"]["selector"].items() <= operator_pod["metadata"]["labels"].items()
    [port] = service["spec"]["ports"]
    container_ports = {p["name"]: p["containerPort"] for c in operator_pod["spec"]["containers"] for p in c["ports"]}
    assert (port["port"], container_ports[port["targetPort"]]) == (SERVICE_PORT, LISTEN_PORT)
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        [webhook] = _one(kind, CONFIGURATION_NAME)["webhooks"]
        reference = webhook["clientConfig"]["service"]
        assert (reference["name"], reference["namespace"], reference["port"]) == (SERVICE_NAME, NAMESPACE, port["port"])
        assert "caBundle" not in webhook["clientConfig"], "the operator owns the caBundle"


def test_webhook_configurations_are_the_operators_own_but_for_the_ca() -> None:
    """The static files hold what the operator registers at start (controller/webhook.py), caBundle aside, so
    applying them and the operator's own writes never fight over rules, paths or policies."""
    mutating, validating = webhook_configurations(b"CA", service=(NAMESPACE, SERVICE_NAME, SERVICE_PORT))
    for rendered in (mutating, validating):
        for hook in rendered["webhooks"]:
            del hook["clientConfig"]["caBundle"]
        shipped = _one(rendered["kind"], rendered["metadata"]["name"])
        assert shipped["metadata"]["labels"] == {"app.kubernetes.io/part-of": "vdpa-operator"}
        assert {k: v for k, v in shipped.items() if k != "metadata"} == {
            k: v for k, v in rendered.items() if k != "metadata"}


def test_the_daemon_sees_the_host_where_the_code_looks() -> None:
    """Each host path the Linux adapter and the daemon's store use is the host's own, mounted at the same place."""
    daemon = _one("DaemonSet", "vdpa-config-daemon")
    spec = daemon["spec"]["template"]["spec"]
    assert (spec["hostNetwork"], spec["hostPID"]) == (True, True)
    assert spec["containers"][0]["securityContext"]["privileged"] is True
    assert spec["tolerations"] == [{"operator": "Exists"}]
    mounts = host_mounts(daemon, "config-daemon")
    ovs_dir = dirname(DEFAULT_REMOTE.removeprefix("unix:"))
    for path in ["/sys", "/dev", DEFAULT_ROOT, RULES_DIR, "/run/udev", ovs_dir]:
        assert mounts.get(path) == (path, False), f"{path} is not the host's, writable"
    assert mounts["/lib/modules"] == ("/lib/modules", True)


def test_the_cni_server_sees_the_host_where_the_code_looks() -> None:
    """`vdpactl cni-server` with its defaults: the OVS socket, its own socket (the shim on the host connects to it)
    and leases on the host at the same paths; CNI_NETNS paths resolve (host PID for /proc/<pid>/ns/net, the host's
    netns directory with the runtime's later mounts); IPAM plugins run from CNI_PATH's host paths."""
    daemon = _one("DaemonSet", "vdpa-config-daemon")
    server = container_of(daemon, "cni-server")
    assert server["args"][0] == "cni-server" and "--node-name=$(NODE_NAME)" in server["args"]
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in server["env"]
    assert server["securityContext"] == {"privileged": True, "readOnlyRootFilesystem": True}
    mounts = host_mounts(daemon, "cni-server")
    ovs_dir = dirname(DEFAULT_REMOTE.removeprefix("unix:"))
    for path in ["/sys", "/dev", ovs_dir, dirname(DEFAULT_SOCKET), DEFAULT_STATE, NETNS_RUN_DIR, HOST_LOCAL_DATA_DIR]:
        assert mounts.get(path) == (path, False), f"{path} is not the host's, writable"
    assert mounts[CNI_BIN_DIR] == (CNI_BIN_DIR, True)
    [netns] = [m for m in server["volumeMounts"] if m["mountPath"] == NETNS_RUN_DIR]
    assert netns.get("mountPropagation") == "HostToContainer", "netns created after the pod started stay unseen"
    writable = {m["mountPath"] for m in server["volumeMounts"] if not m.get("readOnly")}
    assert writable <= set(mounts), "with a read-only root file system, only the host's paths can be written"


def test_the_init_container_installs_the_shim_into_the_hosts_cni_bin_dir() -> None:
    daemon = _one("DaemonSet", "vdpa-config-daemon")
    [install] = daemon["spec"]["template"]["spec"]["initContainers"]
    assert install["name"] == "install-cni"
    option = next(a for a in install["args"] if a.startswith("--cni-bin-dir="))
    target = option.removeprefix("--cni-bin-dir=")
    assert host_mounts(daemon, "install-cni") == {target: (CNI_BIN_DIR, False)}, "the host's CNI bin dir, writable"
    assert install["args"] == ["install-cni", option]


def test_the_vdpa_cni_example_is_a_valid_nad_for_the_shim() -> None:
    """examples/vdpa-cni-nad.yaml: valid against Multus's CRD schema, and a CNI config the plugin reads, which
    runs the installed shim for the device plugin's resource and has the runtime pass the device-info file."""
    [nad] = load(EXAMPLE_NAD)
    jsonschema.Draft202012Validator(
        NETWORK_ATTACHMENT_DEFINITION_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]).validate(nad)
    assert not decode(nad).schema_issues
    assert (nad["kind"], nad["metadata"]["namespace"], nad["metadata"]["name"]) == (
        "NetworkAttachmentDefinition", "kube-system", "vdpa-cni-a")
    assert nad["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/resourceName": "openshift.io/mlxnics"}
    parsed = parse_config(nad["spec"]["config"].encode(), "ADD")
    assert (parsed.type, parsed.name, parsed.cni_version, parsed.mtu) == (SHIM_NAME, "vdpa-cni-a", "1.0.0", 1500)
    config = json.loads(nad["spec"]["config"])
    assert config["capabilities"] == {"CNIDeviceInfoFile": True, "mac": True}
    assert config["ipam"] == {"type": "host-local", "subnet": "10.56.0.0/16"}


def test_the_device_plugin_reads_what_the_operator_writes() -> None:
    plugin = _one("DaemonSet", "vdpa-device-plugin")
    spec = plugin["spec"]["template"]["spec"]
    assert spec["nodeSelector"][DEVICE_PLUGIN_LABEL] == "Enabled"
    config = next(v for v in spec["volumes"] if "configMap" in v)
    assert config["configMap"]["name"] == CONFIGMAP_NAME
    [container] = spec["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == config["name"])
    config_file = next(a for a in container["args"] if a.startswith("--config-file="))
    assert config_file == f"--config-file={mount['mountPath']}/$(NODE_NAME)"
    assert "--resource-prefix=openshift.io" in container["args"]
    mounts = host_mounts(plugin)
    for path in (DEVICE_PLUGIN_DIR, PLUGINS_REGISTRY, DEVINFO_DIR, "/dev"):
        assert mounts.get(str(path)) == (str(path), False), f"{path} is not the host's, writable"
    assert mounts["/sys"] == ("/sys", True)


def test_the_operator_runs_unprivileged_with_its_probes_and_settings() -> None:
    deployment = _one("Deployment", "vdpa-operator")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    [container] = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    health_port = int(OperatorOptions().health_address[1]) if OperatorOptions().health_address else None
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"webhook": LISTEN_PORT, "http": health_port}
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert (env["RESOURCE_PREFIX"], env["STALE_NODE_STATE_CLEANUP_DELAY_MINUTES"], env["DEV_MODE"]) == (
        "openshift.io", "30", "FALSE")


def test_the_sample_is_the_operator_config_that_counts() -> None:
    [config] = load(SAMPLE)
    assert (config["kind"], config["metadata"]) == ("SriovOperatorConfig", {"name": "default", "namespace": NAMESPACE})
