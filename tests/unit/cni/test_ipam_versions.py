"""The version arithmetic of delegation, pure: which version a plugin gets, and the config rewritten at it with
only the top-level `cniVersion` changed (every other byte as the runtime sent it)."""

from __future__ import annotations

import pytest

from vdpa_operator.cni.errors import DECODING_FAILURE, INVALID_CONFIG, CniError
from vdpa_operator.cni.ipam_delegate import config_version, highest_version, with_cni_version

DEBIAN = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")


@pytest.mark.parametrize(("supported", "version", "expected"), [
    (DEBIAN, "1.1.0", "1.0.0"),
    (DEBIAN, "1.0.0", "1.0.0"),
    (DEBIAN, "0.3.1", "0.3.1"),
    (DEBIAN, "0.3.5", "0.3.1"),
    ((*DEBIAN, "1.1.0"), "1.1.0", "1.1.0"),
    (("1.0.0", "0.4.0", "1.1.0"), "2.0.0", "1.1.0"),  # the order the plugin lists them in does not matter
    (("1.0.0", "1.1.0"), "0.4.0", None),
])
def test_highest_supported_version_not_above_the_configs(supported: tuple[str, ...], version: str,
                                                          expected: str | None) -> None:
    assert highest_version(supported, version) == expected


def test_only_the_configs_and_the_prev_results_cni_version_are_rewritten() -> None:
    config = (b'{\n  "cniVersion" : "1.1.0",\n  "name": "net1", "type":"vdpa-cni",\t"big": 1e400, "ratio": 1.10,\n'
              b'  "ipam": {"type": "host-local", "cniVersion": "1.1.0"},\n'
              b'  "prevResult": {"ips": [{"address": "10.1.0.5/16", "cniVersion": "1.1.0"}],"cniVersion":"1.1.0"},\n'
              b'  "note": "caf\xc3\xa9 \\"cniVersion\\": \\"1.1.0\\""\n}\n')
    expected = (config.replace(b'"cniVersion" : "1.1.0"', b'"cniVersion" : "1.0.0"')
                .replace(b'"cniVersion":"1.1.0"}', b'"cniVersion":"1.0.0"}'))
    assert with_cni_version(config, "1.0.0") == expected
    assert expected.count(b"1.1.0") == 3  # ipam's, the one inside prevResult.ips, the one in a string


def test_a_prev_result_without_cni_version_stays_as_it_is() -> None:
    config = b'{"cniVersion": "1.1.0", "prevResult": {"ips": []}}'
    assert with_cni_version(config, "1.0.0") == b'{"cniVersion": "1.0.0", "prevResult": {"ips": []}}'


def test_a_duplicated_top_level_cni_version_is_rewritten_everywhere() -> None:
    config = b'{"cniVersion":"1.1.0","name":"n","cniVersion":"1.1.0"}'
    assert with_cni_version(config, "1.0.0") == b'{"cniVersion":"1.0.0","name":"n","cniVersion":"1.0.0"}'


@pytest.mark.parametrize(("config", "code"), [
    (b'{"name": "n"}', INVALID_CONFIG),
    (b'{"cniVersion": "1.1.0",}', DECODING_FAILURE),
    (b'["cniVersion", "1.1.0"]', DECODING_FAILURE),
    (b'{"cniVersion" "1.1.0"}', DECODING_FAILURE),
    (b'\xff{"cniVersion": "1.1.0"}', DECODING_FAILURE),
])
def test_a_config_that_cannot_be_rewritten(config: bytes, code: int) -> None:
    with pytest.raises(CniError) as caught:
        with_cni_version(config, "1.0.0")
    assert caught.value.code == code


@pytest.mark.parametrize(("config", "version"), [
    (b'{"cniVersion": "1.1.0", "name": "n"}', "1.1.0"),
    (b'{"name": "n"}', "0.1.0"),  # libcni: no cniVersion is 0.1.0
    (b'{"cniVersion": "", "name": "n"}', "0.1.0"),
])
def test_config_version(config: bytes, version: str) -> None:
    assert config_version(config) == version


@pytest.mark.parametrize(("config", "code", "message"), [
    (b'{"cniVersion": "1.1"', DECODING_FAILURE, "not JSON"),
    (b'"1.1.0"', DECODING_FAILURE, "not a JSON object"),
    (b'{"cniVersion": "latest"}', INVALID_CONFIG, "cniVersion: 'latest' is not a CNI version"),
    (b'{"cniVersion": 1.1}', INVALID_CONFIG, "is not a CNI version"),
])
def test_config_version_of_a_bad_config(config: bytes, code: int, message: str) -> None:
    with pytest.raises(CniError, match=message) as caught:
        config_version(config)
    assert caught.value.code == code
