"""The CNI as a runtime runs it, next to a peer in the same run: ADD and DEL through the `vdpa-cni` shim and the
node's CNI server (its own process), against Debian's `host-device` plugin with `static` IPAM doing the nearest
thing a stock plugin does — moving a veth into a pod's netns and giving it an address. As root.

Ours: the simulated ConnectX-6 Dx host with real links (`--sim-netns`), the seed policy applied, VF 0000:65:00.2's
virtio netdev (a veth end) moved into a pod's netns with an address from the node's allocator, its representor
(the other end) added to br-int of a private userspace OVS, one OVSDB transaction. The peer moves a veth and sets
a static address. Both run from a private netns that stands for the node; every ADD is followed by its DEL.

The simulated host's files live on tmpfs (/dev/shm) when there is one, as sysfs lives in memory: on disk its
bookkeeping (a few dozen attribute files per moved netdev) costs more than the kernel work it stands for. The
address leases stay on disk, fsync'd, as on a node. Also printed, from the same run: the kernel's own cost of
moving a veth between namespaces (`ip link set … netns`, exec included) and of starting the node's python3 —
the floor under any Python CNI plugin that moves a netdev.

Goals: our ADD p50 <= the peer's ADD p50; our DEL p50 <= the peer's DEL p50; the shim's own start < 15 ms (the
copy `vdpactl install-cni` writes, run the way a runtime runs it, answering VERSION).

    sudo .venv/bin/python bench/cni.py [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import percentile, stop, verdict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from integration.host.ovs_daemons import running_ovs  # noqa: E402
from vdpa_operator.api.models import SriovNetworkNodeStateSpec  # noqa: E402
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS  # noqa: E402
from vdpa_operator.daemon.node import NodeAgent  # noqa: E402
from vdpa_operator.daemon.store import DaemonStore  # noqa: E402
from vdpa_operator.host.sim import SimKernel, sim_host  # noqa: E402

BIN = Path(sys.executable).parent
CNI_PATH = "/usr/lib/cni"
SEED = json.loads((ROOT / "tests/golden/seed-node-state-spec.json").read_text())
GOAL_SHIM_MS = 15.0


def timed(what: str, argv: list[str], env: dict[str, str], stdin: bytes) -> float:
    """Milliseconds argv took; a run that fails stops the bench (its time would be no figure)."""
    started = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True, check=False)
    ms = (time.perf_counter() - started) * 1000
    if proc.returncode != 0:
        output = " ".join(out.decode(errors="replace").strip() for out in (proc.stdout, proc.stderr) if out.strip())
        raise SystemExit(f"{what} failed (exit status {proc.returncode}){': ' + output if output else ''}")
    return ms


def cni_env(command: str, container: str, netns: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns,
            "CNI_IFNAME": "eth0", "CNI_PATH": CNI_PATH,
            "CNI_ARGS": "IgnoreUnknown=true;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod"}


def run_pairs(label: str, plugin: list[str], config: dict[str, object], netns: str,
              runs: int) -> dict[str, list[float]]:
    stdin = json.dumps(config).encode()
    times: dict[str, list[float]] = {"ADD": [], "DEL": []}
    for i in range(runs + 10):
        container = f"{label}{i}"
        for command in ("ADD", "DEL"):
            ms = timed(f"{label} {command}", plugin, cni_env(command, container, netns), stdin)
            if i >= 10:  # warm-up
                times[command].append(ms)
    return times


def shim_start(shim: Path, runs: int = 50) -> list[float]:
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION"}
    return [timed(f"{shim} VERSION", [str(shim)], env, b'{"cniVersion":"1.0.0"}') for _ in range(runs)]


def floors(node: str, pod: str, runs: int = 50) -> tuple[list[float], list[float]]:
    """(a veth's move into a netns and back with `ip`, python3's bare start): what the kernel and the
    interpreter cost before any plugin code runs."""
    moves: list[float] = []
    for _ in range(runs):
        for source, target in ((node, pod), (pod, node)):
            moves.append(timed(f"moving peer0 from netns {source} to {target}",
                               ["ip", "-n", source, "link", "set", "peer0", "netns", target], {}, b""))
    env = {"PATH": "/usr/bin:/bin"}
    starts = [timed("python3 -I -S -c pass", ["python3", "-I", "-S", "-c", "pass"], env, b"") for _ in range(runs)]
    return moves, starts


def delete_netns(names: list[str]) -> None:
    for name in names:  # those never added fail quietly
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def wait_for_server(server: subprocess.Popen[bytes], socket: Path, timeout: float = 30) -> None:
    """Until the CNI server's socket exists; fails as soon as the server exits, or after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not socket.exists():
        if server.poll() is not None:
            raise SystemExit(f"the CNI server exited (status {server.returncode}) before listening at {socket}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the CNI server did not listen at {socket} within {timeout:g} s")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("ovs-vswitchd") is None or not Path(CNI_PATH, "host-device").exists():
        raise SystemExit("needs root, Open vSwitch and containernetworking-plugins (make setup installs them)")
    memory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="bench-cni-", dir=memory) as tmp, \
            tempfile.TemporaryDirectory(prefix="bench-cni-leases-") as leases, running_ovs(own_netns=True) as ovs, \
            contextlib.ExitStack() as cleanup:
        root = Path(tmp)
        node = ovs.netns
        assert node is not None
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
        kernel = SimKernel.create(root / "host", node_netns=node, real_netdevs=True)
        agent = NodeAgent(sim_host(kernel), DaemonStore(root / "store"), DEFAULT_SUPPORTED_NICS)
        observed = agent.observe()
        assert agent.apply(agent.plan(SriovNetworkNodeStateSpec.model_validate(SEED), observed), observed).ok
        socket = root / "cni.sock"
        log = root / "server.log"
        pods = [f"bench-pod-{os.getpid()}-{i}" for i in range(2)]
        # `cleanup` undoes in reverse, each step even when one before it failed: the server stopped (killed if
        # SIGTERM is not enough), then the pods' netns deleted.
        cleanup.callback(delete_netns, pods)
        with log.open("wb") as log_file:  # the server has its own descriptor
            server = subprocess.Popen(
                [str(BIN / "vdpactl"), "cni-server", "--node-name", "bench", "--host", "sim", "--sim-root",
                 str(root / "host"), "--sim-netns", node, "--ovsdb", ovs.remote, "--socket", str(socket),
                 "--pod-cidr", "10.56.0.0/16", "--state-dir", leases, "--no-ovn"],
                stdout=subprocess.DEVNULL, stderr=log_file)
        cleanup.callback(stop, server, "the CNI server")
        try:
            wait_for_server(server, socket)
            for pod in pods:
                subprocess.run(["ip", "netns", "add", pod], check=True)
            subprocess.run(["ip", "-n", node, "link", "add", "peer0", "type", "veth", "peer", "name", "peer0b"],
                           check=True)
            shim_dir = root / "bin"
            shim_dir.mkdir()
            subprocess.run([str(BIN / "vdpactl"), "install-cni", "--cni-bin-dir", str(shim_dir)], check=True,
                           capture_output=True)
            enter = ["nsenter", f"--net=/var/run/netns/{node}"]  # both plugins run from the node's netns
            ours = run_pairs("ours", [*enter, str(shim_dir / "vdpa-cni")], {
                "cniVersion": "1.0.0", "name": "bench", "type": "vdpa-cni", "deviceID": "0000:65:00.2",
                "serverSocket": str(socket)}, f"/var/run/netns/{pods[0]}", args.runs)
            peer = run_pairs("peer", [*enter, f"{CNI_PATH}/host-device"], {
                "cniVersion": "1.0.0", "name": "peer", "type": "host-device", "device": "peer0",
                "ipam": {"type": "static", "addresses": [{"address": "10.57.0.2/24"}]}},
                f"/var/run/netns/{pods[1]}", args.runs)
            moves, python_starts = floors(node, pods[1])
            starts = shim_start(shim_dir / "vdpa-cni")
            venv_starts = shim_start(BIN / "vdpa-cni")
        except BaseException:
            print(f"the CNI server's log ends:\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)
            raise
    for command in ("ADD", "DEL"):
        o, p = ours[command], peer[command]
        print(f"{command} over {len(o)} runs: ours p50 {statistics.median(o):.1f} ms, p99 {percentile(o, 99):.1f} ms; "
              f"peer (host-device + static) p50 {statistics.median(p):.1f} ms, p99 {percentile(p, 99):.1f} ms "
              f"(goal: ours p50 <= peer p50: {verdict(statistics.median(o) <= statistics.median(p))})")
    print(f"floor, same run: a veth's move between netns with `ip` p50 {statistics.median(moves):.1f} ms; "
          f"python3 -I -S start p50 {statistics.median(python_starts):.1f} ms")
    shim_p50 = statistics.median(starts)
    print(f"shim start, installed copy answering VERSION: p50 {shim_p50:.1f} ms, p99 {percentile(starts, 99):.1f} ms "
          f"(goal p50 < {GOAL_SHIM_MS:g} ms: {verdict(shim_p50 < GOAL_SHIM_MS)}); the virtualenv's console script: p50 "
          f"{statistics.median(venv_starts):.1f} ms (for context)")


if __name__ == "__main__":
    main()
