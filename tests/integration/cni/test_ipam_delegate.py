"""DelegatedIpam against real executables on a CNI_PATH (a skel-like fake plugin, see ipam_fake_plugin.py):
lookup, the environment and stdin passed as received, stderr passed through, the plugin's own error codes, raw
output when it printed no error, timeouts, and the version fallback with its cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from ipam_fake_plugin import UP_TO_1_0_0, UP_TO_1_1_0, FakePlugin

from vdpa_operator.cni.errors import (
    DECODING_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    IPAM_FAILURE,
    TRY_AGAIN_LATER,
    CniError,
)
from vdpa_operator.cni.ipam import DelegatedIpam, IpamResult, IpConfig, VersionCache
from vdpa_operator.cni.ipam_result import parse_cidr_address

RESULT = json.dumps({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/16"}], "dns": {}})


def config(version: str = "1.0.0", **extra: object) -> bytes:
    body = {"cniVersion": version, "name": "net1", "type": "vdpa-cni", "ipam": {"type": "fake-ipam"}, **extra}
    return json.dumps(body, indent=2).encode()


def env(cni_path: Path | str) -> dict[str, str]:
    return {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/pod-a", "CNI_IFNAME": "net1",
            "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a", "CNI_PATH": str(cni_path)}


@pytest.fixture
def plugin(tmp_path: Path) -> FakePlugin:
    fake = FakePlugin(tmp_path / "bin")
    fake.answer("ADD", stdout=RESULT)
    return fake


def test_add_runs_the_plugin_with_our_environment_and_the_complete_config(plugin: FakePlugin) -> None:
    ipam = DelegatedIpam("fake-ipam", str(plugin.directory))
    sent = config(prevResult=None, dns={"nameservers": ["10.1.0.1"]})
    assert ipam.add(env(plugin.directory), sent) == IpamResult(ips=(IpConfig(parse_cidr_address("10.1.0.5/16")),))
    [call] = plugin.calls()
    assert call["stdin"].encode() == sent
    assert call["command"] == "ADD"
    assert {key: call["env"].get(key) for key in env(plugin.directory)} == env(plugin.directory)


@pytest.mark.parametrize(("method", "verb"), [("delete", "DEL"), ("check", "CHECK")])
def test_each_verb_sets_cni_command_over_the_environment_given(plugin: FakePlugin, method: str, verb: str) -> None:
    getattr(DelegatedIpam("fake-ipam", str(plugin.directory)), method)(env(plugin.directory), config())
    assert [call["env"]["CNI_COMMAND"] for call in plugin.calls()] == [verb]


def test_the_first_plugin_on_cni_path_wins(tmp_path: Path) -> None:
    first, second = FakePlugin(tmp_path / "a"), FakePlugin(tmp_path / "b")
    for fake in (first, second):
        fake.answer("ADD", stdout=RESULT)
    path = f"{tmp_path / 'missing'}::{first.directory}:{second.directory}"
    ipam = DelegatedIpam("fake-ipam", path)
    assert ipam.executable() == str(first.path)
    ipam.add(env(path), config())
    assert (len(first.calls()), len(second.calls())) == (1, 0)


def test_a_plugin_not_on_cni_path(tmp_path: Path) -> None:
    with pytest.raises(CniError) as caught:
        DelegatedIpam("whereabouts", f"{tmp_path}:/nonexistent").add(env(tmp_path), config())
    assert caught.value.code == INVALID_CONFIG
    assert caught.value.msg == f"IPAM plugin whereabouts not found in CNI_PATH {tmp_path}:/nonexistent"
    assert "install the plugin" in caught.value.details


def test_an_empty_cni_path(tmp_path: Path) -> None:
    with pytest.raises(CniError, match="CNI_PATH is empty") as caught:
        DelegatedIpam("host-local", "").add(env(""), config())
    assert caught.value.code == INVALID_ENVIRONMENT


@pytest.mark.parametrize("plugin_type", ["", "../host-local", "/usr/lib/cni/host-local", "sub/host-local", "..",
                                         "a..b"])
def test_a_type_that_is_a_path_is_refused(plugin_type: str) -> None:
    with pytest.raises(CniError, match="is not a plugin name") as caught:
        DelegatedIpam(plugin_type, "/usr/lib/cni")
    assert caught.value.code == INVALID_CONFIG


def test_the_plugins_stderr_goes_to_ours(plugin: FakePlugin, capfd: pytest.CaptureFixture[str]) -> None:
    plugin.answer("ADD", stdout=RESULT, stderr="host-local: allocating from range 0\n")
    DelegatedIpam("fake-ipam", str(plugin.directory)).add(env(plugin.directory), config())
    assert capfd.readouterr().err == "host-local: allocating from range 0\n"


def test_the_plugins_own_error_code_and_message(plugin: FakePlugin) -> None:
    error = {"cniVersion": "1.0.0", "code": TRY_AGAIN_LATER, "msg": "store busy", "details": "lock held by pid 7"}
    plugin.answer("ADD", stdout=json.dumps(error), exit=1)
    with pytest.raises(CniError) as caught:
        DelegatedIpam("fake-ipam", str(plugin.directory)).add(env(plugin.directory), config())
    assert (caught.value.code, caught.value.msg, caught.value.details) == (
        TRY_AGAIN_LATER, "IPAM plugin fake-ipam ADD: store busy", "lock held by pid 7")


@pytest.mark.parametrize(("answer", "message", "details"), [
    ({"stdout": "panic: runtime error: index out of range\n", "exit": 2}, "exited with status 2 on DEL",
     "panic: runtime error: index out of range"),
    ({"exit": 1}, "exited with status 1 on DEL", "no output on stdout; its stderr above may say why"),
    ({"stdout": '{"code": 0, "msg": "ok?"}', "exit": 1}, "exited with status 1 on DEL", '{"code": 0, "msg": "ok?"}'),
    ({"signal": "SIGKILL"}, "was killed by SIGKILL on DEL", "no output"),
])
def test_a_failure_without_a_cni_error_is_an_ipam_failure_with_the_raw_output(
        plugin: FakePlugin, answer: dict[str, object], message: str, details: str) -> None:
    plugin.answer("DEL", **answer)
    with pytest.raises(CniError) as caught:
        DelegatedIpam("fake-ipam", str(plugin.directory)).delete(env(plugin.directory), config())
    assert caught.value.code == IPAM_FAILURE
    assert caught.value.msg == f"IPAM plugin {plugin.path} {message} without a CNI error on stdout"
    assert details in caught.value.details


def test_a_plugin_that_hangs_is_killed_after_the_timeout(plugin: FakePlugin) -> None:
    plugin.answer("ADD", sleep=30)
    with pytest.raises(CniError) as caught:
        DelegatedIpam("fake-ipam", str(plugin.directory), timeout=0.5).add(env(plugin.directory), config())
    assert caught.value.code == IPAM_FAILURE
    assert caught.value.msg == f"IPAM plugin {plugin.path} did not finish ADD within 0.5 s; killed it"


def test_a_plugin_that_cannot_be_executed(plugin: FakePlugin) -> None:
    plugin.path.write_bytes(b"\x7fELF not really")
    with pytest.raises(CniError, match=f"cannot run IPAM plugin {plugin.path}: Exec format error") as caught:
        DelegatedIpam("fake-ipam", str(plugin.directory)).add(env(plugin.directory), config())
    assert caught.value.code == IPAM_FAILURE


@pytest.mark.parametrize(("stdout", "message", "details"), [
    ("", "result is not JSON", ""),
    ("10.1.0.5/16", "result is not JSON", "10.1.0.5/16"),
    ('["10.1.0.5/16"]', "result is not a JSON object", '["10.1.0.5/16"]'),
    ('{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5"}]}', "result: cannot decode ips[0].address",
     "CIDR notation"),
])
def test_an_add_result_that_cannot_be_read(plugin: FakePlugin, stdout: str, message: str, details: str) -> None:
    plugin.answer("ADD", stdout=stdout)
    with pytest.raises(CniError) as caught:
        DelegatedIpam("fake-ipam", str(plugin.directory)).add(env(plugin.directory), config())
    assert caught.value.code == DECODING_FAILURE
    assert caught.value.msg.startswith("IPAM plugin fake-ipam ADD ")
    assert message in caught.value.msg
    assert details in caught.value.details


# --- versions -----------------------------------------------------------------------------------------------------


def test_a_newer_config_is_re_sent_at_the_plugins_highest_version(plugin: FakePlugin,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    prev = {"cniVersion": "1.1.0", "ips": [{"address": "10.1.0.5/16"}]}
    sent = config("1.1.0", prevResult=prev)
    ipam = DelegatedIpam("fake-ipam", str(plugin.directory))
    with caplog.at_level(logging.DEBUG, logger="vdpa_operator.cni.ipam_delegate"):
        ipam.add(env(plugin.directory), sent)
    assert plugin.commands() == [("ADD", "1.1.0"), ("VERSION", "1.1.0"), ("ADD", "1.0.0")]
    # only the config's and the prevResult's cniVersion changed, every other byte as sent
    assert plugin.calls()[-1]["stdin"].encode() == sent.replace(b'"cniVersion": "1.1.0"', b'"cniVersion": "1.0.0"')
    assert "IPAM plugin fake-ipam does not support CNI 1.1.0: sending the config as 1.0.0" in caplog.text
    assert ipam.versions.get(str(plugin.path)) == tuple(UP_TO_1_0_0)
    ipam.delete(env(plugin.directory), sent)
    ipam.check(env(plugin.directory), sent)
    assert plugin.commands()[3:] == [("DEL", "1.0.0"), ("CHECK", "1.0.0")]  # VERSION asked once


def test_one_cache_serves_every_delegated_ipam_and_an_upgraded_plugin_is_asked_again(plugin: FakePlugin) -> None:
    versions = VersionCache()
    DelegatedIpam("fake-ipam", str(plugin.directory), versions=versions).add(env(plugin.directory), config("1.1.0"))
    DelegatedIpam("fake-ipam", str(plugin.directory), versions=versions).add(env(plugin.directory), config("1.1.0"))
    assert plugin.commands() == [("ADD", "1.1.0"), ("VERSION", "1.1.0"), ("ADD", "1.0.0"), ("ADD", "1.0.0")]
    plugin.supports(UP_TO_1_1_0)
    plugin.path.write_text(plugin.path.read_text() + "# version 1.1\n")  # a new binary in place
    DelegatedIpam("fake-ipam", str(plugin.directory), versions=versions).add(env(plugin.directory), config("1.1.0"))
    assert plugin.commands()[4:] == [("ADD", "1.1.0")]


def test_a_plugin_supporting_no_version_up_to_the_configs(plugin: FakePlugin) -> None:
    plugin.supports(["1.0.0", "1.1.0"])
    ipam = DelegatedIpam("fake-ipam", str(plugin.directory))
    with pytest.raises(CniError) as refused:
        ipam.add(env(plugin.directory), config("0.4.0"))
    assert (refused.value.code, refused.value.msg) == (INCOMPATIBLE_VERSION,
                                                       "IPAM plugin fake-ipam ADD: incompatible CNI versions")
    with pytest.raises(CniError) as cached:
        ipam.add(env(plugin.directory), config("0.4.0"))
    assert (cached.value.code, cached.value.msg) == (
        INCOMPATIBLE_VERSION, "IPAM plugin fake-ipam supports no CNI version up to the config's 0.4.0")
    assert plugin.commands() == [("ADD", "0.4.0"), ("VERSION", "0.4.0")]


def test_check_is_not_run_for_a_config_before_0_4_0(plugin: FakePlugin, caplog: pytest.LogCaptureFixture) -> None:
    plugin.answer("CHECK", stdout='{"code": 999, "msg": "would fail"}', exit=1)
    ipam = DelegatedIpam("fake-ipam", str(plugin.directory))
    with caplog.at_level(logging.DEBUG, logger="vdpa_operator.cni.ipam_delegate"):
        ipam.check(env(plugin.directory), config("0.3.1"))
    assert plugin.commands() == []
    assert "CHECK not run, the config's version 0.3.1 has no CHECK" in caplog.text
    with pytest.raises(CniError, match="would fail"):
        ipam.check(env(plugin.directory), config("0.4.0"))


@pytest.mark.parametrize(("method", "verb"), [("status", "STATUS"), ("gc", "GC")])
def test_status_and_gc_run_on_a_plugin_that_has_them(plugin: FakePlugin, method: str, verb: str) -> None:
    plugin.supports(UP_TO_1_1_0)
    plugin.answer(verb, stdout='{"code": 50, "msg": "no addresses left"}', exit=1)
    ipam = DelegatedIpam("fake-ipam", str(plugin.directory))
    with pytest.raises(CniError) as caught:
        getattr(ipam, method)(env(plugin.directory), config("1.1.0"))
    assert (caught.value.code, caught.value.msg) == (50, f"IPAM plugin fake-ipam {verb}: no addresses left")
    assert plugin.commands() == [("VERSION", "1.1.0"), (verb, "1.1.0")]
    assert [call["env"]["CNI_COMMAND"] for call in plugin.calls()] == ["VERSION", verb]


@pytest.mark.parametrize(("method", "verb"), [("status", "STATUS"), ("gc", "GC")])
def test_status_and_gc_are_skipped_where_the_plugin_or_the_config_lacks_them(
        plugin: FakePlugin, caplog: pytest.LogCaptureFixture, method: str, verb: str) -> None:
    plugin.answer(verb, exit=1)
    ipam = DelegatedIpam("fake-ipam", str(plugin.directory))
    with caplog.at_level(logging.DEBUG, logger="vdpa_operator.cni.ipam_delegate"):
        getattr(ipam, method)(env(plugin.directory), config("1.1.0"))
        getattr(ipam, method)(env(plugin.directory), config("1.1.0"))
        getattr(ipam, method)(env(plugin.directory), config("1.0.0"))
    assert plugin.commands() == [("VERSION", "1.1.0")]
    assert f"{verb} not run, the plugin supports CNI versions 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0 only" \
        in caplog.text
    assert f"{verb} not run, the config's version 1.0.0 has no {verb} (1.1.0 and later)" in caplog.text


def test_a_plugin_whose_version_answer_cannot_be_read(plugin: FakePlugin) -> None:
    plugin.path.write_text("#!/bin/sh\necho '{\"supportedVersions\": \"1.0.0\"}'\n")
    with pytest.raises(CniError) as caught:
        DelegatedIpam("fake-ipam", str(plugin.directory)).status(env(plugin.directory), config("1.1.0"))
    assert caught.value.code == DECODING_FAILURE
    assert caught.value.msg.startswith("IPAM plugin fake-ipam VERSION result: no list of versions")
