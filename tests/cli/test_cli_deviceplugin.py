"""`vdpactl device-plugin` as a user runs it: a config it cannot serve exits 2 naming the entry and field; a
real process on the simulated host registers with a kubelet, allocates, and on SIGTERM removes its files."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from integration.deviceplugin.dp_harness import MLXNICS, SEED_CONFIG, SEED_SPEC, SEED_VFS, configured_host
from vdpa_operator.cli import main
from vdpa_operator.sim.kubelet.devicemanager import DeviceManager


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"resourceList": [{"resourceName": "mlx nics", "selectors": {}}]}',
         "resourceList[0] (mlx nics).resourceName: 'mlx nics' contains invalid characters"),
        ('{"resourceList": [{"resourceName": "a", "selectors": {"vdpaType": "virtio", "isRdma": true}}]}',
         "vdpaType and isRdma are mutually exclusive"),
        ("{resourceList", "not valid JSON"),
    ],
)
def test_a_config_it_cannot_serve_exits_2(tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(config)
    result = CliRunner().invoke(main, ["device-plugin", "--node-name", "n", "--host", "sim", "--sim-root",
                                       str(tmp_path / "sim"), "--config-file", str(path)])
    assert result.exit_code == 2, result.output
    assert f"error: {path}: " in result.output and message in result.output
    assert "Traceback" not in result.output


def test_a_missing_config_file_or_node_name_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = CliRunner().invoke(main, ["device-plugin", "--node-name", "n", "--config-file", str(missing)])
    assert result.exit_code == 2
    assert f"{missing}: cannot read the resource config: No such file or directory" in result.output
    result = CliRunner().invoke(main, ["device-plugin", "--config-file", str(missing)], env={"NODE_NAME": ""})
    assert result.exit_code == 2 and "--node-name (or $NODE_NAME) is required" in result.output


@pytest.mark.parametrize("watcher", [False, True])
def test_a_socket_path_too_long_for_a_unix_socket_exits_2(tmp_path: Path, watcher: bool) -> None:
    """In the directory the sockets would go to: kubelet's plugin watcher's when it exists."""
    path = tmp_path / "config.json"
    path.write_text(SEED_CONFIG)
    plugins, registry = tmp_path / "plugins", tmp_path / "registry"
    long = registry if watcher else plugins
    long = long.with_name(long.name + "-" + "d" * 100)
    if watcher:
        long.mkdir()
    flag = "--plugins-registry" if watcher else "--device-plugin-path"
    result = CliRunner().invoke(main, [
        "device-plugin", "--node-name", "n", "--host", "sim", "--sim-root", str(tmp_path / "sim"), "--config-file",
        str(path), "--device-plugin-path", str(plugins), "--plugins-registry", str(registry), flag, str(long)])
    assert result.exit_code == 2, result.output
    assert f"resource openshift.io/mlxnics: its socket {long}/" in result.output and flag in result.output
    assert not plugins.exists() and not (tmp_path / "sim").exists(), "refused before anything was made"


def test_a_real_process_serves_kubelet_and_cleans_up_on_sigterm(short_tmp: Path) -> None:
    tmp_path = short_tmp
    configured_host(tmp_path, SEED_SPEC)
    config = tmp_path / "worker-0"
    config.write_text(SEED_CONFIG)
    plugins = tmp_path / "device-plugins"
    devinfo = tmp_path / "devinfo"
    argv = [sys.executable, "-m", "vdpa_operator.cli", "device-plugin", "--node-name", "worker-0", "--host", "sim",
            "--sim-root", str(tmp_path / "host"), "--config-file", str(config), "--device-plugin-path", str(plugins),
            "--plugins-registry", str(tmp_path / "no-registry"), "--devinfo-dir", str(devinfo)]

    async def main_() -> None:
        kubelet = DeviceManager(plugins)
        await kubelet.start()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            endpoint = await kubelet.wait_for(MLXNICS, lambda e: e.healthy() == SEED_VFS, timeout=30)
            await kubelet.allocate(MLXNICS, [[SEED_VFS[0]]])
            assert [p.name for p in devinfo.iterdir()] == [f"openshift.io-mlxnics-{SEED_VFS[0]}-device.json"]
            proc.send_signal(signal.SIGTERM)
            output, _ = await asyncio.to_thread(proc.communicate, timeout=20)
            assert not endpoint.socket.exists(), "the plugin removes its socket (kubelet has not wiped it)"
        finally:
            if proc.poll() is None:
                proc.kill()
            await kubelet.stop()
        assert proc.returncode == 0, output
        assert list(devinfo.iterdir()) == []
        assert "Traceback" not in output
        assert "openshift.io/mlxnics: registered with kubelet" in output

    asyncio.run(main_())
