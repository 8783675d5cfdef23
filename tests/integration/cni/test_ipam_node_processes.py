"""The node allocator's store shared by separate processes, as concurrent exec'd CNI calls share it: every
address handed out once, lowest first, and every lease on disk naming its owner."""

from __future__ import annotations

import os
import subprocess
import sys
from ipaddress import ip_interface
from pathlib import Path

ALLOCATE = """
import sys
from ipaddress import IPv4Network
from pathlib import Path
from vdpa_operator.cni.ipam import NodeIpam
ipam = NodeIpam(Path(sys.argv[1]), IPv4Network("10.56.0.0/16"), range_start=IPv4Network("10.56.1.0/24")[2],
                range_end=IPv4Network("10.56.1.0/24")[254])
sys.stdin.read()  # start together: when the test closes the other end of stdin
for index in range(int(sys.argv[3])):
    print(ipam.allocate("vdpa-net", f"{sys.argv[2]}-{index}", "net1").ips[0].address, flush=True)
"""


def test_processes_sharing_a_store_never_share_an_address(tmp_path: Path) -> None:
    gate, opener = os.pipe()  # every worker's stdin: closing `opener` starts them all at once
    workers: list[subprocess.Popen[str]] = []
    try:
        try:
            for n in range(4):
                workers.append(subprocess.Popen([sys.executable, "-c", ALLOCATE, str(tmp_path), f"pod{n}", "40"],
                                                stdin=gate, stdout=subprocess.PIPE, text=True))
        finally:
            os.close(gate)
            os.close(opener)
        outputs = [worker.communicate(timeout=60)[0].split() for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [worker.returncode for worker in workers] == [0, 0, 0, 0]
    handed_out = [address for output in outputs for address in output]
    assert sorted(handed_out, key=ip_interface) == [f"10.56.1.{host}/16" for host in range(2, 162)]
    leases = {path.name: path.read_text() for path in (tmp_path / "vdpa-net").iterdir() if path.name != ".lock"}
    assert len(leases) == 160
    for output, n in zip(outputs, range(4), strict=True):
        for index, address in enumerate(output):
            assert leases[address.split("/")[0]] == f"pod{n}-{index}\nnet1\n"
