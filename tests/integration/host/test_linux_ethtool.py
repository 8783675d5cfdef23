"""IoctlEthtool against the real kernel on a veth pair in a private netns, with the ethtool CLI as the oracle.

Covers `ethtool -i` (driver info), reading features by kernel and legacy name, changing a changeable feature
and refusing a fixed one (veth's `hw-tc-offload` is fixed off on some kernels, changeable on others: the
oracle decides which assertion applies), the errno mapping, and that entering a netns never leaves the
calling thread there.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Iterator

import pytest

from integration.host.linux_netns import needs_root, private_netns, run, unique_name
from vdpa_operator.host.errors import DeviceNotFound, InvalidArgument, NotSupported
from vdpa_operator.host.linux.ethtool import IoctlEthtool

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("ethtool") is None, reason="the ethtool CLI (the oracle) is not installed"),
]


@pytest.fixture
def ns() -> Iterator[str]:
    with private_netns() as name:
        run("ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        yield name


def oracle_features(ns: str, dev: str = "v0") -> dict[str, str]:
    """`ethtool -k` as {name: "on" | "off" | "off [fixed]" …}."""
    features = {}
    for line in run("ethtool", "-k", dev, netns=ns).splitlines()[1:]:
        name, _, value = line.strip().partition(": ")
        features[name] = value
    return features


def oracle_driver_info(ns: str, dev: str = "v0") -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in run("ethtool", "-i", dev,
                                                                                 netns=ns).splitlines())}


def test_driver_info_matches_ethtool_i(ns: str) -> None:
    info = IoctlEthtool().driver_info("v0", ns)
    oracle = oracle_driver_info(ns)
    assert info.driver == "veth" == oracle["driver"]
    assert info.version == oracle["version"]
    assert info.firmware_version == oracle["firmware-version"]
    assert info.bus_info == oracle["bus-info"] == ""


def test_hw_tc_offload_reads_as_ethtool_k_shows_it(ns: str) -> None:
    oracle = oracle_features(ns)["hw-tc-offload"]
    assert IoctlEthtool().feature("v0", "hw-tc-offload", ns) is oracle.startswith("on")


def test_hw_tc_offload_is_set_or_refused_as_fixed(ns: str) -> None:
    ethtool = IoctlEthtool()
    oracle = oracle_features(ns)["hw-tc-offload"]
    if "[fixed]" in oracle:
        with pytest.raises(NotSupported) as info:
            ethtool.set_feature("v0", "hw-tc-offload", not oracle.startswith("on"), ns)
        assert "fixed" in str(info.value)
        assert info.value.errno == errno.EOPNOTSUPP
        assert oracle_features(ns)["hw-tc-offload"] == oracle
        ethtool.set_feature("v0", "hw-tc-offload", oracle.startswith("on"), ns)  # already so: nothing to do
    else:
        ethtool.set_feature("v0", "hw-tc-offload", True, ns)
        assert oracle_features(ns)["hw-tc-offload"].startswith("on")
        assert ethtool.feature("v0", "hw-tc-offload", ns) is True


@pytest.mark.parametrize("feature", ["rx-gro", "generic-receive-offload"])
def test_a_changeable_feature_toggles(ns: str, feature: str) -> None:
    ethtool = IoctlEthtool()
    if "[fixed]" in oracle_features(ns)["generic-receive-offload"]:
        pytest.skip("GRO is fixed on this kernel's veth")
    for enabled in (True, False, False):
        ethtool.set_feature("v0", feature, enabled, ns)
        assert ethtool.feature("v0", feature, ns) is enabled
        assert oracle_features(ns)["generic-receive-offload"] == ("on" if enabled else "off")


def test_every_single_bit_feature_reads_like_ethtool_k(ns: str) -> None:
    ethtool = IoctlEthtool()
    oracle = oracle_features(ns)
    checked = 0
    for name, value in oracle.items():
        if name in ("tx-checksumming", "scatter-gather", "tcp-segmentation-offload"):
            continue  # ethtool's aggregates of several bits, not features
        assert ethtool.feature("v0", name, ns) is value.startswith("on"), name
        checked += 1
    assert checked > 30


def test_unknown_feature(ns: str) -> None:
    ethtool = IoctlEthtool()
    assert ethtool.feature("v0", "no-such-feature", ns) is None
    with pytest.raises(NotSupported, match="no feature 'no-such-feature'"):
        ethtool.set_feature("v0", "no-such-feature", True, ns)


def test_missing_device(ns: str) -> None:
    with pytest.raises(DeviceNotFound) as info:
        IoctlEthtool().driver_info("nosuch0", ns)
    assert info.value.errno == errno.ENODEV
    assert "nosuch0" in str(info.value)
    with pytest.raises(DeviceNotFound):
        IoctlEthtool().feature("nosuch0", "hw-tc-offload", ns)


def test_name_longer_than_ifnamsiz(ns: str) -> None:
    with pytest.raises(InvalidArgument):
        IoctlEthtool().driver_info("a-name-of-twenty-chars", ns)


def test_missing_netns() -> None:
    with pytest.raises(DeviceNotFound):
        IoctlEthtool().driver_info("lo", unique_name())


def test_the_calling_thread_stays_in_its_netns(ns: str) -> None:
    before = os.readlink("/proc/thread-self/ns/net")
    threads_before = threading.active_count()
    IoctlEthtool().driver_info("v0", ns)
    assert os.readlink("/proc/thread-self/ns/net") == before
    assert threading.active_count() == threads_before
    if not os.path.lexists("/sys/class/net/v0"):
        with pytest.raises(DeviceNotFound):
            IoctlEthtool().driver_info("v0")  # v0 exists only in the private netns


def test_netns_by_path(ns: str) -> None:
    assert IoctlEthtool().driver_info("v1", f"/var/run/netns/{ns}").driver == "veth"
