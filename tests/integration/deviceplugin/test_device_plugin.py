"""The device plugin against a fake kubelet over real gRPC, on the simulated host after the node daemon applied
the seed policy (and the vhost/virtio partition): registration, ListAndWatch, Allocate and its files, health,
config reload, kubelet restarts, the plugin watcher, CDI, and a clean shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from pathlib import Path

import grpc
import pytest

from integration.deviceplugin.dp_harness import (
    MLXNICS,
    PARTITION_CONFIG,
    PARTITION_SPEC,
    SEED_CONFIG,
    SEED_SPEC,
    SEED_VFS,
    configured_host,
    running,
    settings_for,
)
from vdpa_operator.api.models import SriovNetworkNodeStateSpec
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.daemon.node import NodeAgent
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.deviceplugin.service import DevicePluginService, load_config
from vdpa_operator.host.types import VdpaDriver, VdpaMgmtDev, vdpa_name
from vdpa_operator.sim.kubelet.devicemanager import DeviceManager, Endpoint

VF = SEED_VFS[1]


def listed(endpoint: Endpoint) -> bool:
    return endpoint.updates > 0


def health_of(device_id: str, health: str):  # type: ignore[no-untyped-def]
    return lambda e: e.devices.get(device_id, ("", ()))[0] == health


def test_registers_and_lists_the_seed_vfs(short_tmp: Path) -> None:
    _, host = configured_host(short_tmp, SEED_SPEC)

    async def main() -> None:
        async with running(host, settings_for(short_tmp, config=SEED_CONFIG)) as rig:
            endpoint = await rig.kubelet.wait_for(MLXNICS, listed)
            [request] = rig.kubelet.registrations
            assert (request.version, request.endpoint, request.resource_name) == (
                "v1beta1", "openshift.io_mlxnics.sock", MLXNICS)
            assert request.options.get_preferred_allocation_available
            assert endpoint.options.get_preferred_allocation_available and not endpoint.options.pre_start_required
            assert endpoint.socket == short_tmp / "device-plugins" / "openshift.io_mlxnics.sock"
            assert endpoint.devices == {vf: ("Healthy", (0,)) for vf in SEED_VFS}

    asyncio.run(main())


def test_allocate_virtio_env_and_device_info_file(short_tmp: Path) -> None:
    _, host = configured_host(short_tmp, SEED_SPEC)

    async def main() -> None:
        async with running(host, settings_for(short_tmp, config=SEED_CONFIG)) as rig:
            await rig.kubelet.wait_for(MLXNICS, listed)
            response = await rig.kubelet.allocate(MLXNICS, [[VF], [SEED_VFS[2]]])
            first, second = response.container_responses
            assert dict(first.envs) == {
                "PCIDEVICE_OPENSHIFT_IO_MLXNICS": VF,
                "PCIDEVICE_OPENSHIFT_IO_MLXNICS_INFO": f'{{"{VF}":{{"generic":{{"deviceID":"{VF}"}},"vdpa":{{}}}}}}',
            }
            assert list(first.devices) == [] and list(first.mounts) == [] and dict(first.annotations) == {}
            assert dict(second.envs)["PCIDEVICE_OPENSHIFT_IO_MLXNICS"] == SEED_VFS[2]
            path = rig.settings.devinfo_dir / f"openshift.io-mlxnics-{VF}-device.json"
            assert stat.S_IMODE(path.stat().st_mode) == 0o444
            assert json.loads(path.read_text()) == {"type": "vdpa", "version": "1.1.0", "vdpa": {
                "parent-device": f"vdpa:{VF}", "driver": "virtio", "pci-address": VF,
                "pf-pci-address": "0000:65:00.0", "representor-device": "ens1f0_1"}}
            # Allocating the same device again (a restarted container) rewrites its file.
            await rig.kubelet.allocate(MLXNICS, [[VF]])
            assert sorted(rig.device_info()) == [f"openshift.io-mlxnics-{v}-device.json" for v in (VF, SEED_VFS[2])]
        assert not rig.settings.devinfo_dir.exists() or not list(rig.settings.devinfo_dir.iterdir())

    asyncio.run(main())


def test_allocate_vhost_gives_the_char_device(short_tmp: Path) -> None:
    """The partition: VFs 0-1 of ens1f0 vhost, 2-3 virtio, each its own resource."""
    _, host = configured_host(short_tmp, PARTITION_SPEC)

    async def main() -> None:
        async with running(host, settings_for(short_tmp, config=PARTITION_CONFIG)) as rig:
            vhost = await rig.kubelet.wait_for("openshift.io/vhostvdpa", listed)
            virtio = await rig.kubelet.wait_for("openshift.io/virtiovdpa", listed)
            assert sorted(vhost.devices) == ["0000:65:00.2", "0000:65:00.3"]
            assert sorted(virtio.devices) == ["0000:65:00.4", "0000:65:00.5"]
            binding = host.vdpa.binding(vdpa_name("0000:65:00.3"))  # type: ignore[arg-type]
            chardev = binding.vhost_chardev
            assert chardev is not None and stat.S_ISCHR(os.stat(chardev).st_mode)
            [answer] = (await rig.kubelet.allocate("openshift.io/vhostvdpa", [["0000:65:00.3"]])).container_responses
            assert [(d.host_path, d.container_path, d.permissions) for d in answer.devices] == [
                (chardev, chardev, "rw")]
            info = json.loads(dict(answer.envs)["PCIDEVICE_OPENSHIFT_IO_VHOSTVDPA_INFO"])
            assert info == {"0000:65:00.3": {"generic": {"deviceID": "0000:65:00.3"}, "vdpa": {"mount": chardev}}}
            file = json.loads(rig.device_info()["openshift.io-vhostvdpa-0000:65:00.3-device.json"])
            assert file["vdpa"]["path"] == chardev and file["vdpa"]["driver"] == "vhost"

    asyncio.run(main())


def test_an_unknown_or_unhealthy_device_is_invalid_argument_and_nothing_is_written(short_tmp: Path) -> None:
    _, host = configured_host(short_tmp, SEED_SPEC)

    async def main() -> None:
        async with running(host, settings_for(short_tmp, config=SEED_CONFIG)) as rig:
            await rig.kubelet.wait_for(MLXNICS, listed)
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await rig.kubelet.allocate(MLXNICS, [[VF], ["0000:99:00.9"]])
            assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "unknown device '0000:99:00.9'" in (failure.value.details() or "")
            host.vdpa.delete(vdpa_name(VF))  # type: ignore[arg-type]
            await rig.kubelet.wait_for(MLXNICS, health_of(VF, "Unhealthy"))
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await rig.kubelet.allocate(MLXNICS, [[VF]])
            assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"device {VF} is Unhealthy: {VF} has no vDPA device" in (failure.value.details() or "")
            assert rig.device_info() == {}

    asyncio.run(main())


def test_a_vdpa_device_deleted_goes_unhealthy_and_healthy_again_when_restored(short_tmp: Path) -> None:
    _, host = configured_host(short_tmp, SEED_SPEC)

    async def main() -> None:
        async with running(host, settings_for(short_tmp, config=SEED_CONFIG)) as rig:
            await rig.kubelet.wait_for(MLXNICS, listed)
            host.vdpa.delete(vdpa_name(VF))  # type: ignore[arg-type]
            endpoint = await rig.kubelet.wait_for(MLXNICS, health_of(VF, "Unhealthy"))
            assert [i for i, (h, _) in endpoint.devices.items() if h == "Healthy"] == [
                v for v in SEED_VFS if v != VF]
            host.vdpa.create(vdpa_name(VF), VdpaMgmtDev("pci", VF))  # type: ignore[arg-type]
            host.modules.load("vhost_vdpa")
            host.vdpa.bind(vdpa_name(VF), VdpaDriver.VHOST)  # the wrong driver for a virtio pool: still unhealthy
            await asyncio.sleep(0.2)
            assert rig.kubelet.endpoints[MLXNICS].devices[VF][0] == "Unhealthy"
            host.vdpa.bind(vdpa_name(VF), VdpaDriver.VIRTIO)
            endpoint = await rig.kubelet.wait_for(MLXNICS, health_of(VF, "Healthy"))
            assert endpoint.healthy() == SEED_VFS

    asyncio.run(main())


def test_vfs_created_after_start_join_without_a_restart(short_tmp: Path) -> None:
    """Upstream discovers once at start (the operator restarts its pod); here the next scan finds them."""
    _, host = configured_host(short_tmp, {"interfaces": []})

    async def main() -> None:
        async with running(host, settings_for(short_tmp, config=SEED_CONFIG)) as rig:
            endpoint = await rig.kubelet.wait_for(MLXNICS, listed)
            assert endpoint.devices == {}
            agent = NodeAgent(host, DaemonStore(short_tmp / "store"), DEFAULT_SUPPORTED_NICS)
            observed = agent.observe()
            plan = agent.plan(SriovNetworkNodeStateSpec.model_validate(SEED_SPEC), observed)
            assert (await asyncio.to_thread(agent.apply, plan, observed)).ok
            endpoint = await rig.kubelet.wait_for(MLXNICS, lambda e: e.healthy() == SEED_VFS)
            assert len(rig.kubelet.registrations) == 1

    asyncio.run(main())


def test_config_reload_through_a_configmap_symlink_swap(short_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A ConfigMap volume: `worker-0` → `..data/worker-0`, `..data` → a timestamped dir, swapped atomically."""
    _, host = configured_host(short_tmp, SEED_SPEC)
    settings = settings_for(short_tmp, config=SEED_CONFIG)
    volume = short_tmp / "volume"

    def publish(version: str, text: str) -> None:
        (volume / version).mkdir(parents=True)
        (volume / version / "worker-0").write_text(text)
        (volume / "..data_tmp").symlink_to(version)
        os.replace(volume / "..data_tmp", volume / "..data")

    publish("..v1", SEED_CONFIG)
    (volume / "worker-0").symlink_to("..data/worker-0")
    settings.config_file.unlink()
    settings.config_file.symlink_to(volume / "worker-0")

    async def main() -> None:
        async with running(host, settings) as rig:
            await rig.kubelet.wait_for(MLXNICS, listed)
            old_socket = rig.kubelet.endpoints[MLXNICS].socket
            renamed = SEED_CONFIG.replace('"mlxnics"', '"vdpanics"')
            publish("..v2", renamed)
            endpoint = await rig.kubelet.wait_for("openshift.io/vdpanics", lambda e: e.healthy() == SEED_VFS)
            assert endpoint.socket.name == "openshift.io_vdpanics.sock"
            gone = await rig.kubelet.wait_for(MLXNICS, lambda e: not e.connected)
            assert not old_socket.exists() and all(h == "Unhealthy" for h, _ in gone.devices.values())
            with caplog.at_level(logging.ERROR, logger="vdpa_operator.deviceplugin.service"):
                publish("..v3", '{"resourceList": [{"resourceName": "bad name", "selectors": {}}]}')
                await asyncio.sleep(0.2)
            assert "still serving the last good config" in caplog.text
            assert "resourceList[0] (bad name).resourceName" in caplog.text
            assert rig.kubelet.endpoints["openshift.io/vdpanics"].connected
            assert (await rig.kubelet.allocate("openshift.io/vdpanics", [[VF]])).container_responses

    asyncio.run(main())


def test_re_registers_after_a_kubelet_restart(short_tmp: Path) -> None:
    _, host = configured_host(short_tmp, SEED_SPEC)

    async def main() -> None:
        async with running(host, settings_for(short_tmp, config=SEED_CONFIG)) as rig:
            await rig.kubelet.wait_for(MLXNICS, listed)
            await rig.kubelet.stop(wipe=True)  # kubelet goes, and with it every socket in the directory
            assert not (short_tmp / "device-plugins" / "openshift.io_mlxnics.sock").exists()
            await rig.kubelet.start()
            endpoint = await rig.kubelet.wait_for(MLXNICS, lambda e: e.healthy() == SEED_VFS)
            assert len(rig.kubelet.registrations) == 2  # once with each kubelet
            assert endpoint.socket.exists()

    asyncio.run(main())


def test_plugin_watcher_mode_registers_through_the_watcher_only(short_tmp: Path) -> None:
    _, host = configured_host(short_tmp, SEED_SPEC)
    settings = settings_for(short_tmp, config=SEED_CONFIG, plugin_watcher=True)

    async def main() -> None:
        async with running(host, settings, plugin_watcher=True) as rig:
            endpoint = await rig.kubelet.wait_for(MLXNICS, lambda e: e.healthy() == SEED_VFS)
            assert endpoint.socket == short_tmp / "plugins_registry" / "openshift.io_mlxnics.sock"
            assert rig.kubelet.registrations == []  # never both: no Register call on kubelet.sock
            assert not (short_tmp / "device-plugins" / "openshift.io_mlxnics.sock").exists()
            await rig.kubelet.allocate(MLXNICS, [[VF]])
        assert not endpoint.socket.exists()

    asyncio.run(main())


def test_cdi_mode(short_tmp: Path) -> None:
    _, host = configured_host(short_tmp, PARTITION_SPEC)
    settings = settings_for(short_tmp, config=PARTITION_CONFIG, use_cdi=True)
    settings.cdi_dir.mkdir()
    stale = settings.cdi_dir / "sriov-dp-openshift.io-net-pci-old.json"
    stale.write_text("{}")
    other = settings.cdi_dir / "vendor.json"
    other.write_text("{}")

    async def main() -> None:
        async with running(host, settings) as rig:
            await rig.kubelet.wait_for("openshift.io/vhostvdpa", listed)
            await rig.kubelet.wait_for("openshift.io/virtiovdpa", listed)
            assert not stale.exists() and other.exists()
            spec = json.loads((settings.cdi_dir / "sriov-dp-openshift.io-net-pci-vhostvdpa.json").read_text())
            chardevs = [host.vdpa.binding(vdpa_name(v)).vhost_chardev  # type: ignore[arg-type]
                        for v in ("0000:65:00.2", "0000:65:00.3")]
            assert spec["kind"] == "openshift.io/net-pci"
            assert [d["containerEdits"]["deviceNodes"][0]["hostPath"] for d in spec["devices"]] == chardevs
            [answer] = (await rig.kubelet.allocate("openshift.io/vhostvdpa", [["0000:65:00.2"]])).container_responses
            assert list(answer.devices) == []
            assert dict(answer.annotations) == {"cdi.k8s.io/openshift.io_net-pci": "openshift.io/net-pci=0000:65:00.2"}
        assert sorted(p.name for p in settings.cdi_dir.iterdir()) == ["vendor.json"]

    asyncio.run(main())


def test_preferred_allocation_over_grpc(short_tmp: Path) -> None:
    _, host = configured_host(short_tmp, SEED_SPEC)

    async def main() -> None:
        async with running(host, settings_for(short_tmp, config=SEED_CONFIG)) as rig:
            endpoint = await rig.kubelet.wait_for(MLXNICS, listed)
            chosen = await rig.kubelet.preferred(MLXNICS, endpoint.healthy(), [SEED_VFS[3]], 2)
            assert chosen == [SEED_VFS[3], SEED_VFS[2]]  # the same PF as the one it must have

    asyncio.run(main())


def test_a_plugin_started_before_kubelet_registers_once_kubelet_is_up(short_tmp: Path) -> None:
    _, host = configured_host(short_tmp, SEED_SPEC)
    settings = settings_for(short_tmp, config=SEED_CONFIG)

    async def main() -> None:
        config, file = load_config(settings)
        service = DevicePluginService(host, settings, config, file)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        await asyncio.sleep(0.3)  # no kubelet.sock yet: the plugin serves and keeps trying
        assert (settings.device_plugin_dir / "openshift.io_mlxnics.sock").exists()
        kubelet = DeviceManager(settings.device_plugin_dir)
        await kubelet.start()
        try:
            endpoint = await kubelet.wait_for(MLXNICS, lambda e: e.healthy() == SEED_VFS)
            assert endpoint.options.get_preferred_allocation_available
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await kubelet.stop()

    asyncio.run(main())
