"""The `ethtool -i` parser on the seed's block (fixtures/seed_ethtool_i.txt, verbatim from the seed); a real
veth's is parsed in tests/integration/verify."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vdpa_operator.verify.ethtool import EthtoolParseError, parse_driver_info

SEED = (Path(__file__).parent / "fixtures" / "seed_ethtool_i.txt").read_text()


def test_the_seeds_block_says_virtio_net_on_its_vdpa_device() -> None:
    info = parse_driver_info(SEED)
    assert info.driver == re.search(r"^driver: (\S+)$", SEED, re.M).group(1)  # type: ignore[union-attr]
    assert info.bus_info == re.search(r"^bus-info: (\S+)$", SEED, re.M).group(1)  # type: ignore[union-attr]
    assert info.bus_info.startswith("vdpa:")
    assert info.fields["firmware-version"] == ""
    assert len(info.fields) == len(SEED.splitlines())


def test_text_without_a_driver_line_is_not_ethtool_output() -> None:
    with pytest.raises(EthtoolParseError, match="no 'driver:' line"):
        parse_driver_info("Cannot get driver information: No such device\n")
