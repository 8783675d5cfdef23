"""The dump-flows parser on the seed's own four lines (fixtures/seed_dump_flows.txt, copied verbatim from the seed's
"Check datapath rules are offloaded") and on shapes OVS prints elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vdpa_operator.verify.flows import FlowParseError, parse_dump_flows, parse_flow

SEED = (Path(__file__).parent / "fixtures" / "seed_dump_flows.txt").read_text()
SEED_LINES = SEED.splitlines()


def test_every_seed_line_is_one_flow_with_the_numbers_it_prints() -> None:
    flows = parse_dump_flows(SEED)
    assert len(flows) == len(SEED_LINES) == 4
    for flow, line in zip(flows, SEED_LINES, strict=True):
        assert flow.ufid == re.match(r"ufid:([0-9a-f-]{36}),", line).group(1)  # type: ignore[union-attr]
        assert flow.packets == int(re.search(r" packets:(\d+),", line).group(1))  # type: ignore[union-attr]
        assert flow.bytes == int(re.search(r" bytes:(\d+),", line).group(1))  # type: ignore[union-attr]
        assert flow.used == re.search(r" used:([^,]+),", line).group(1)  # type: ignore[union-attr]
        assert flow.actions == line.split(", actions:", 1)[1]
        assert (flow.is_offloaded, flow.dp) == (True, "tc")


def test_seed_match_fields_keep_their_arguments() -> None:
    first = parse_dump_flows(SEED)[0]
    assert first.match["in_port"] == "ac63a8e99747603"
    assert first.match["eth_type"] == "0x0800"
    assert first.fields("eth") == {"src": "0a:58:c0:a8:00:06", "dst": "0a:58:c0:a8:00:05"}
    assert first.fields("ipv4")["proto"] == "6"
    assert first.fields("tcp") == {"src": "0/0", "dst": "57426"}
    assert first.actions == "ct(zone=15,nat),recirc(0x440)"


def test_a_pods_flows_are_those_whose_exact_eth_or_ip_is_its_own() -> None:
    flows = parse_dump_flows(SEED)
    # 192.168.0.5 / 0a:58:c0:a8:00:05 is the iperf3 server: the third flow (IPv6 from .06, dst MAC wildcarded
    # `00:..:00/00:..:00`) is not its flow.
    server = [i for i, f in enumerate(flows) if f.touches(["0a:58:c0:a8:00:05", "192.168.0.5"])]
    client = [i for i, f in enumerate(flows) if f.touches(["0A:58:C0:A8:00:06"])]
    assert server == [0, 1, 3]
    assert client == [0, 1, 2, 3]
    assert "00:00:00:00:00:00" not in flows[2].addresses() and "::" not in flows[2].addresses()


@pytest.mark.parametrize(("field", "exact"), [
    ("ipv4(src=10.0.0.1/255.255.255.255,dst=10.0.0.2/0.0.0.0)", {"10.0.0.1"}),
    ("ipv4(src=10.0.0.1/255.255.255.0,dst=10.0.0.2)", {"10.0.0.2"}),
    ("eth(src=AA:bb:cc:dd:ee:ff/ff:ff:ff:ff:ff:ff,dst=01:00:00:00:00:00/01:00:00:00:00:00)", {"aa:bb:cc:dd:ee:ff"}),
    ("ipv6(src=fe80:0::1,dst=::/::)", {"fe80::1"}),
])
def test_masked_addresses_count_only_when_fully_masked(field: str, exact: set[str]) -> None:
    flow = parse_flow(f"ufid:1, recirc_id(0),{field}, packets:0, bytes:0, used:never, actions:drop")
    assert flow.addresses() == exact


def test_userspace_shapes_headers_partial_offload_and_extra_info() -> None:
    text = ("flow-dump from the main thread:\n"
            "ufid:5, in_port(rep1),eth(src=76:30:65:d2:19:b4,dst=e6:2b:36:17:da:c1), packets:2, bytes:196, "
            "used:0.018s, flags:SF., offloaded:partial, dp:ovs, actions:rep2,br-int, dp-extra-info:miniflow_bits(5,1)\n"
            "flow-dump from pmd on cpu core: 1\n")
    (flow,) = parse_dump_flows(text)
    assert flow.actions == "rep2,br-int"
    assert (flow.offloaded, flow.is_offloaded, flow.dp) == ("partial", False, "ovs")


def test_a_line_with_actions_but_no_flow_shape_names_its_line() -> None:
    with pytest.raises(FlowParseError, match="line 2"):
        parse_dump_flows("header\nufid:1, garbage, packets:1, bytes:1, used:never, actions:drop\n")
    with pytest.raises(FlowParseError, match="not a number"):
        parse_flow("ufid:1, in_port(1), packets:x, bytes:1, used:never, actions:drop")


_name = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_arg = st.from_regex(r"[a-z0-9=/:.]{1,12}", fullmatch=True)


@given(fields=st.dictionaries(_name, st.lists(_arg, min_size=1, max_size=3).map(",".join), min_size=1, max_size=6),
       packets=st.integers(0, 2**63), size=st.integers(0, 2**63), offloaded=st.sampled_from(["", "yes", "partial"]),
       actions=st.lists(st.sampled_from(["drop", "ct(zone=1,nat)", "recirc(0x1)", "rep2", "set(eth(src=a))"]),
                        min_size=1, max_size=4).map(",".join))
def test_what_dpctl_formats_parses_back(fields: dict[str, str], packets: int, size: int, offloaded: str,
                                        actions: str) -> None:
    """The line as lib/dpctl.c's format_dpif_flow writes it, from arbitrary parts."""
    match = ",".join(f"{name}({args})" for name, args in fields.items())
    marks = f", offloaded:{offloaded}" if offloaded else ""
    line = f"ufid:u, {match}, packets:{packets}, bytes:{size}, used:never{marks}, dp:tc, actions:{actions}"
    flow = parse_flow(line)
    assert (dict(flow.match), flow.packets, flow.bytes, flow.offloaded, flow.actions) == (
        fields, packets, size, offloaded, actions)
