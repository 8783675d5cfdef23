"""The records' JSON shape, the table and the exit code."""

from __future__ import annotations

import json

from vdpa_operator.verify.report import Record, exit_code, failures, to_json, to_table

PASS = Record("ping", "vdpa/a", "worker-0", "pass", "ping 10.0.0.6: 3/3 replies")
SIM = Record("driver", "vdpa/a", "worker-0", "simulated", "driver veth, bus-info (empty)", model="simulated NIC")
FAIL = Record("flows", "vdpa/b", "worker-1", "fail", "0 of 3 flows", reason="no datapath flow matches")


def test_json_is_a_list_of_records_with_the_documented_keys() -> None:
    records = json.loads(to_json([PASS, SIM, FAIL]))
    assert [r["check"] for r in records] == ["ping", "driver", "flows"]
    for record in records:
        assert {"check", "pod", "node", "status", "observed", "model"} <= record.keys()
    assert [r["model"] for r in records] == [None, "simulated NIC", None]


def test_exit_code_is_0_for_pass_and_simulated_and_1_for_a_failure_or_nothing_checked() -> None:
    assert exit_code([PASS, SIM]) == 0
    assert exit_code([PASS, SIM, FAIL]) == 1
    assert exit_code([]) == 1


def test_the_table_has_one_line_per_check_and_shows_the_model_beside_a_simulated_one() -> None:
    lines = to_table([PASS, SIM, FAIL]).splitlines()
    assert len(lines) == 4 and lines[0].split() == ["CHECK", "POD", "NODE", "STATUS", "OBSERVED"]
    assert lines[2].startswith("driver") and lines[2].endswith("model: simulated NIC")
    assert "SIMULATED" in lines[2] and "FAIL" in lines[3]


def test_a_failure_says_which_check_where_and_why() -> None:
    assert failures([PASS, FAIL]) == ["flows check failed for pod vdpa/b on node worker-1: no datapath flow matches"]
