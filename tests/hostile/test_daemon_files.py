"""Damaged files of the node daemon's own (the apply journal, PF records, the reset checkpoint) and of the
simulated host (`state.json`): never a traceback. A damaged store file is moved aside as
`<file>.corrupt-<time>`, with a warning naming both, and the apply goes on from what the node shows, ending
where an undamaged one would; a file that cannot be read at all, or a damaged simulated host, is an error
naming the file and what to do (exit 2)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from node_runs import NODE, copy_host, differences, host_snapshot, node_state_file, vdpactl

from vdpa_operator.api.models import SriovNetworkNodeStateSpec
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.daemon.node import NodeAgent
from vdpa_operator.daemon.store import INITIAL_STATE, JOURNAL, SET_ASIDE, DaemonStore, Journal
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.host.sim.kernel import STATE_FILE

SEED: dict[str, Any] = json.loads((Path(__file__).parents[1] / "golden/seed-node-state-spec.json").read_text())
PF0, PF1 = "0000:65:00.0", "0000:65:00.1"
STORE = Path("etc/sriov-operator")
RECORD = STORE / "pci" / PF0

Damage = Callable[[bytes], bytes]
DAMAGES: dict[str, Damage] = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "not-utf8": lambda data: b"\xff\xfe\x00garbage\x80",
    "json-list": lambda data: b"[]",
    "json-object-of-another-shape": lambda data: b'{"what": "not ours"}',
    "deeply-nested": lambda data: b"[" * 100_000,
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A simulated host with the seed applied, and the state file that did it (applied once per module)."""
    directory = tmp_path_factory.mktemp("seeded")
    root = directory / "host"
    SimKernel.create(root, real_netdevs=False)
    state = node_state_file(directory, SEED)
    code, _, err = vdpactl("node", "apply", "--host", "sim", "-f", str(state), root=root)
    assert code == 0, err
    return root, state


@pytest.fixture
def converged(tmp_path: Path, seeded: tuple[Path, Path]) -> tuple[Path, Path, dict[str, Any]]:
    """A copy of the seeded host, the state file, and the host as it is before the test."""
    root = tmp_path / "host"
    copy_host(seeded[0], root)
    return root, seeded[1], host_snapshot(root)


def with_journal(root: Path) -> None:
    """A journal as an apply killed on PF0 leaves it (the host itself is converged: the run re-checks PF0)."""
    DaemonStore(root / STORE).write_journal(Journal(generation=1, pfs=[PF0], total=36, done=12,
                                                   current="set admin MAC of 0000:65:00.2 on ens1f0"))


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES)
@pytest.mark.parametrize("file", [JOURNAL, "record", INITIAL_STATE])
def test_a_damaged_store_file_is_moved_aside_and_the_apply_converges(
        converged: tuple[Path, Path, dict[str, Any]], file: str, damage: Damage) -> None:
    root, state, expected = converged
    if file == JOURNAL:
        with_journal(root)
    path = root / (RECORD if file == "record" else STORE / file)
    damaged = damage(path.read_bytes())
    path.write_bytes(damaged)

    code, _, err = vdpactl("node", "apply", "--host", "sim", "-f", str(state), root=root)
    assert code == 0, err
    assert "Traceback" not in err
    [aside] = [p for p in path.parent.iterdir() if p.name.startswith(path.name + SET_ASIDE)]
    assert aside.read_bytes() == damaged  # kept for a post-mortem
    assert f"note: {path}: " in err and f"moved to {aside.name}" in err, err
    got = host_snapshot(root)
    del got["files"][str(aside.relative_to(root))]
    if file == INITIAL_STATE:  # not re-taken from a node configured by now: resets go to the defaults
        assert json.loads(got["files"].pop(str(STORE / INITIAL_STATE))) == {"interfaces": []}
        del expected["files"][str(STORE / INITIAL_STATE)]
    assert not (diff := differences(got, expected)), diff


def test_a_record_of_another_pf_is_moved_aside(converged: tuple[Path, Path, dict[str, Any]]) -> None:
    root, state, expected = converged
    (root / RECORD).write_bytes((root / STORE / "pci" / PF1).read_bytes())
    code, _, err = vdpactl("node", "apply", "--host", "sim", "-f", str(state), root=root)
    assert code == 0, err
    assert f"{root / RECORD}: the record of PF {PF1}, not of {PF0}; moved to {PF0}{SET_ASIDE}" in err
    got = host_snapshot(root)  # the record saved again by the apply, nothing else changed
    [aside] = [name for name in got["files"] if SET_ASIDE in name]
    assert aside.startswith(f"{RECORD}{SET_ASIDE}")
    del got["files"][aside]
    assert not (diff := differences(got, expected)), diff


def test_a_store_file_that_cannot_be_read_is_an_error_naming_it(converged: tuple[Path, Path, dict[str, Any]]) -> None:
    root, state, _ = converged
    (root / STORE / JOURNAL).mkdir()
    code, out, err = vdpactl("node", "apply", "--host", "sim", "-f", str(state), root=root)
    assert (code, out) == (2, "")
    assert err == f"error: {root / STORE / JOURNAL}: cannot read (Is a directory); check its permissions and " \
                  "that it is a file\n"


def test_the_daemon_logs_what_it_moved_aside_and_re_plans(converged: tuple[Path, Path, dict[str, Any]],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The daemon's core, as the reconcile loop runs it: the warning goes to its log, the note to the plan (and
    from there to an event), and the plan is what the node needs: the record saved again."""
    root, _, _ = converged
    (root / RECORD).write_bytes(b'{"pciAddress": "0000:65:0')
    agent = NodeAgent(sim_host(SimKernel.open(root)), DaemonStore(root / STORE), DEFAULT_SUPPORTED_NICS)
    with caplog.at_level(logging.WARNING, logger="vdpa_operator.daemon.store"):
        observed = agent.observe()
    [record] = [r for r in caplog.records if str(root / RECORD) in r.getMessage()]
    assert "not JSON" in record.getMessage() and SET_ASIDE in record.getMessage()
    planned = agent.plan(SriovNetworkNodeStateSpec.model_validate(SEED), observed)
    assert [s.describe() for s in planned.steps] == [f"save PF record {PF0}"]
    assert any(str(root / RECORD) in note for note in planned.notes)
    assert agent.apply(planned, observed).ok
    assert agent.plan(SriovNetworkNodeStateSpec.model_validate(SEED), agent.observe()).steps == ()


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES)
@pytest.mark.parametrize("command", [("node", "apply"), ("node", "discover")], ids=" ".join)
def test_a_damaged_simulated_host_is_an_error_naming_its_state_file(
        converged: tuple[Path, Path, dict[str, Any]], command: tuple[str, ...], damage: Damage) -> None:
    root, state, _ = converged
    (root / STATE_FILE).write_bytes(damage((root / STATE_FILE).read_bytes()))
    args = [*command, "--host", "sim", *(["-f", str(state)] if command[1] == "apply" else ["--node-name", NODE])]
    code, out, err = vdpactl(*args, root=root)
    assert (code, out) == (2, ""), err
    assert err.startswith(f"error: {root / STATE_FILE}: not a simulated host's state ("), err
    assert err.endswith(f"); delete {root} to start again with a fresh simulated host\n"), err
