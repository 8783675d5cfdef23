"""ping's summary, as iputils (Debian, the seed's iperf3 image) and busybox print it."""

from __future__ import annotations

from vdpa_operator.verify.ping import PingSummary, parse_ping

IPUTILS = """PING 10.56.0.6 (10.56.0.6) 56(84) bytes of data.
64 bytes from 10.56.0.6: icmp_seq=1 ttl=64 time=3.65 ms

--- 10.56.0.6 ping statistics ---
3 packets transmitted, 1 received, 66.6667% packet loss, time 2031ms
rtt min/avg/max/mdev = 0.221/1.369/3.653/1.614 ms
"""
BUSYBOX = """--- 10.56.0.6 ping statistics ---
3 packets transmitted, 0 packets received, 100% packet loss
"""


def test_iputils_and_busybox_summaries() -> None:
    assert parse_ping(IPUTILS) == PingSummary(3, 1, 1.369)
    assert parse_ping(BUSYBOX) == PingSummary(3, 0, None)


def test_no_summary_when_ping_did_not_get_that_far() -> None:
    assert parse_ping("ping: connect: Network is unreachable\n") is None
