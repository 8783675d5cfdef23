"""ping's summary line (`3 packets transmitted, 3 received, 0% packet loss, time 2031ms`) → counts."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_RTT = re.compile(r"= [\d.]+/([\d.]+)/[\d.]+(?:/[\d.]+)? ms")


@dataclass(frozen=True, slots=True)
class PingSummary:
    transmitted: int
    received: int
    rtt_avg_ms: float | None

    def describe(self) -> str:
        rtt = f", rtt avg {self.rtt_avg_ms:g} ms" if self.rtt_avg_ms is not None else ""
        return f"{self.received}/{self.transmitted} replies{rtt}"


def parse_ping(text: str) -> PingSummary | None:
    """The summary of iputils' or busybox's ping; None when the output has none (ping did not get that far)."""
    summary = _SUMMARY.search(text)
    if summary is None:
        return None
    rtt = _RTT.search(text)
    return PingSummary(int(summary.group(1)), int(summary.group(2)), float(rtt.group(1)) if rtt else None)
