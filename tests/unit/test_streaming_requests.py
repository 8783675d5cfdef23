"""How the kubelet's streaming server and the API server's proxy read exec and log requests (pure parts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vdpa_operator.sim.apiserver.errors import StatusError
from vdpa_operator.sim.apiserver.proxy import container_of, container_state
from vdpa_operator.sim.kubelet.streaming import BadLogRequest, LogOptions, exec_options, log_options, tail_offset


def test_exec_options_take_the_kubelets_names_and_the_apis_and_a_tty_merges_stderr() -> None:
    kubelet = exec_options({"input": "1", "output": "1", "error": "1"}, ["ls"])
    api = exec_options({"stdin": "true", "stdout": "true", "stderr": "true"}, ["ls"])
    assert kubelet == api and kubelet.stdin and kubelet.stderr and not kubelet.tty
    terminal = exec_options({"output": "1", "error": "1", "tty": "1"}, ["sh"])
    assert terminal.tty and terminal.stdout and not terminal.stderr


def test_log_options_refuse_what_a_raw_log_cannot_answer() -> None:
    assert log_options({}) == LogOptions()
    assert log_options({"follow": "true", "tailLines": "0", "limitBytes": "9", "timestamps": "false"}) == (
        LogOptions(True, 0, 9))
    for query, message in (({"timestamps": "true"}, "timestamps is not supported"),
                           ({"previous": "1"}, "previous is not supported"),
                           ({"sinceSeconds": "10"}, "sinceSeconds is not supported"),
                           ({"tailLines": "-1"}, "tailLines: must be at least 0"),
                           ({"limitBytes": "0"}, "limitBytes: must be at least 1"),
                           ({"tailLines": "ten"}, "tailLines: 'ten' is not a whole number")):
        with pytest.raises(BadLogRequest, match=message):
            log_options(query)


@given(st.lists(st.text("ab\n", max_size=5), max_size=8).map(lambda parts: "\n".join(parts).encode()),
       st.integers(0, 12))
def test_the_tail_is_the_last_lines_as_splitlines_counts_them(tmp_path_factory: Any, content: bytes,
                                                              lines: int) -> None:
    path = Path(tmp_path_factory.mktemp("tail")) / "log"
    path.write_bytes(content)
    expected = b"".join(content.splitlines(keepends=True)[-lines:]) if lines else b""
    assert content[tail_offset(path, lines):] == expected


POD: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                                                           "initContainers": [{"name": "init"}]}}


def test_the_container_is_the_one_named_or_the_only_one() -> None:
    assert container_of(POD, "b") == "b" and container_of(POD, "init") == "init"
    with pytest.raises(StatusError, match=r"a container name must be specified for pod p, choose one of: \[a b\]"):
        container_of(POD, None)
    with pytest.raises(StatusError, match="container c is not valid for pod p"):
        container_of(POD, "c")
    assert container_of({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "only"}]}}, "") == "only"


@pytest.mark.parametrize(("status", "state"), [
    ({"phase": "Running"}, ("running", "")),
    ({"phase": "Pending"}, ("waiting", "ContainerCreating")),
    ({"phase": "Succeeded"}, ("terminated", "Succeeded")),
    ({"phase": "Running", "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
     ("waiting", "CrashLoopBackOff")),
    ({"phase": "Running", "containerStatuses": [{"name": "a", "state": {"terminated": {"reason": "Error"}}}]},
     ("terminated", "Error")),
])
def test_a_containers_state_comes_from_its_status_else_from_the_phase(status: dict[str, Any],
                                                                     state: tuple[str, str]) -> None:
    assert container_state({**POD, "status": status}, "a") == state
