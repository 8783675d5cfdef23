"""`ovs-appctl dpctl/dump-flows -m` output → datapath flows, and which of them belong to a pod.

The line format is OVS's `format_dpif_flow` (lib/dpctl.c): `ufid:<uuid>, <match>, packets:N, bytes:N,
used:<Xs|never>[, flags:F][, offloaded:yes|partial][, dp:<tc|ovs>], actions:<actions>[, dp-extra-info:…]`.
Match fields are `name(args)` joined by bare commas; the statistics by ", ". Other lines (the userspace
datapath's `flow-dump from the main thread:` headers) are not flows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vdpa_operator.errors import VdpaOperatorError

_STATS = ("packets", "bytes", "used", "flags", "offloaded", "dp")
_ACTIONS = ", actions:"
_EXTRA = ", dp-extra-info:"


@dataclass(frozen=True, slots=True)
class DatapathFlow:
    ufid: str
    match: Mapping[str, str]
    """Match field name → its raw arguments: `eth` → `src=0a:58:c0:a8:00:06,dst=0a:58:c0:a8:00:05`."""
    packets: int
    bytes: int
    used: str
    """`2.310s` or `never`, as printed."""
    offloaded: str
    """`yes`, `partial` (a userspace datapath with partial hardware help) or `` (not offloaded)."""
    dp: str
    """The datapath layer that holds the flow: `tc` (offloaded to TC flower), `ovs` (OVS's own)."""
    actions: str
    raw: str = field(repr=False, default="")

    @property
    def is_offloaded(self) -> bool:
        """What the seed checks: `offloaded:yes` (`partial` still runs in software)."""
        return self.offloaded == "yes"

    def fields(self, name: str) -> dict[str, str]:
        """The `key=value` arguments of match field `name` (`eth` → {src: …, dst: …}); {} when absent."""
        return dict(_key_value(part) for part in _split_top(self.match.get(name, ""), ","))

    def addresses(self) -> set[str]:
        """The MAC and IP addresses this flow matches exactly (eth, ipv4 and ipv6 src/dst whose mask, if any,
        is all ones); wildcarded ones say nothing about whose flow it is."""
        found = set()
        for name in ("eth", "ipv4", "ipv6"):
            for key in ("src", "dst"):
                value = _exact(self.fields(name).get(key, ""))
                if value:
                    found.add(value)
        return found

    def touches(self, addresses: Iterable[str]) -> bool:
        """Whether the flow's exact eth/ip src or dst is one of `addresses` (a pod's MAC and IPs)."""
        wanted = {normalize_address(a) for a in addresses if a}
        return bool(wanted & self.addresses())


class FlowParseError(VdpaOperatorError, ValueError):
    """A line that has `actions:` but not the shape of a datapath flow."""


def parse_dump_flows(text: str) -> list[DatapathFlow]:
    """Every flow line of the output, in order; header lines are skipped."""
    flows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if _ACTIONS in line or line.startswith("actions:"):
            try:
                flows.append(parse_flow(line.strip()))
            except FlowParseError as err:
                raise FlowParseError(f"dump-flows line {number}: {err}: {line.strip()!r}") from None
    return flows


def parse_flow(line: str) -> DatapathFlow:
    head, _, actions = line.partition(_ACTIONS)
    actions, _, _extra = actions.partition(_EXTRA)
    ufid, match, stats = "", {}, {}
    for segment in _split_top(head, ", "):
        key, colon, value = segment.partition(":")
        if key == "ufid" and colon:
            ufid = value
        elif key in _STATS and colon:
            stats[key] = value
        else:
            for item in _split_top(segment, ","):
                name, _, rest = item.partition("(")
                if not rest.endswith(")"):
                    raise FlowParseError(f"match field {item!r} is not name(args)")
                match[name] = rest[:-1]
    try:
        return DatapathFlow(ufid=ufid, match=match, packets=int(stats.get("packets", "0")),
                            bytes=int(stats.get("bytes", "0")), used=stats.get("used", ""),
                            offloaded=stats.get("offloaded", ""), dp=stats.get("dp", ""), actions=actions,
                            raw=line)
    except ValueError as err:
        raise FlowParseError(f"packets/bytes not a number ({err})") from None


def _split_top(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside parentheses."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [part for part in parts if part]


def _key_value(item: str) -> tuple[str, str]:
    key, _, value = item.partition("=")
    return key, value


def _exact(value: str) -> str:
    """The address in `value` (`addr` or `addr/mask`) when it is matched exactly, else ``."""
    address, slash, mask = value.partition("/")
    if not address:
        return ""
    if slash and not _all_ones(mask):
        return ""
    return normalize_address(address)


def _all_ones(mask: str) -> bool:
    if ":" in mask and "." not in mask and len(mask.split(":")) == 6:  # a MAC mask
        return mask.lower() == "ff:ff:ff:ff:ff:ff"
    try:
        parsed = ipaddress.ip_address(mask)
    except ValueError:
        return False
    return int(parsed) == (1 << parsed.max_prefixlen) - 1


def normalize_address(address: str) -> str:
    """A MAC in lower case, an IP in its canonical form (`::ffff:…`, `fe80::…`), so output and API agree."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address.lower()
