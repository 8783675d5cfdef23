"""`OperatorSettings.from_env`: the operator Deployment's environment, read as upstream's operator reads it
(`main.go` for RESOURCE_PREFIX, `handleStaleNodeState` for the cleanup delay, `vars` for DEV_MODE)."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from vdpa_operator.api.admission import DEFAULT_NAMESPACE, Settings
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.controller.settings import (
    DEFAULT_RESOURCE_PREFIX,
    DEFAULT_STALE_DELAY_MINUTES,
    OperatorSettings,
    SettingsError,
    SyncTiming,
)


def test_defaults_from_an_empty_environment() -> None:
    settings = OperatorSettings.from_env({})
    assert settings == OperatorSettings()
    assert (settings.namespace, settings.resource_prefix, settings.stale_delay_minutes, settings.dev_mode) == (
        DEFAULT_NAMESPACE, "openshift.io", 30, False)
    assert settings.nics is DEFAULT_SUPPORTED_NICS


def test_values_are_taken_from_the_environment() -> None:
    settings = OperatorSettings.from_env({"NAMESPACE": "sriov", "RESOURCE_PREFIX": "example.com",
                                          "STALE_NODE_STATE_CLEANUP_DELAY_MINUTES": "60", "DEV_MODE": "TRUE"})
    assert (settings.namespace, settings.resource_prefix, settings.stale_delay_minutes, settings.dev_mode) == (
        "sriov", "example.com", 60, True)


def test_empty_namespace_means_the_default() -> None:
    assert OperatorSettings.from_env({"NAMESPACE": ""}).namespace == DEFAULT_NAMESPACE


def test_empty_resource_prefix_stops_the_operator_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match=rf"RESOURCE_PREFIX is empty.*{DEFAULT_RESOURCE_PREFIX}"):
        OperatorSettings.from_env({"RESOURCE_PREFIX": ""})


@pytest.mark.parametrize(("raw", "minutes"), [("0", 0), ("1", 1), ("60", 60), ("+5", 5), ("007", 7)])
def test_cleanup_delay_accepts_minutes_from_zero(raw: str, minutes: int) -> None:
    """Go's strconv.Atoi takes a leading sign and leading zeros."""
    assert OperatorSettings.from_env({"STALE_NODE_STATE_CLEANUP_DELAY_MINUTES": raw}).stale_delay_minutes == minutes



@pytest.mark.parametrize("raw", ["-20", "-1", "", "ten", "1.5", "30m",
                                 pytest.param("9" * 30, id="beyond-int64"),
                                 pytest.param(" 5", id="leading-space"),
                                 pytest.param("1_0", id="underscore")])
def test_invalid_cleanup_delay_is_logged_and_the_default_used(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    """Upstream logs the error and uses `DefaultNodeStateCleanupDelayMinutes` (its test case uses -20); what is
    invalid is what `strconv.Atoi` refuses, or a negative number."""
    with caplog.at_level(logging.ERROR, logger="vdpa_operator.controller.settings"):
        settings = OperatorSettings.from_env({"STALE_NODE_STATE_CLEANUP_DELAY_MINUTES": raw})
    assert settings.stale_delay_minutes == DEFAULT_STALE_DELAY_MINUTES == 30
    assert any("STALE_NODE_STATE_CLEANUP_DELAY_MINUTES" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)


@pytest.mark.parametrize(("raw", "dev_mode"), [
    ("TRUE", True), ("true", False), ("True", False), ("1", False), ("yes", False), ("", False), (" TRUE", False),
])
def test_dev_mode_is_only_the_exact_string_true(raw: str, dev_mode: bool) -> None:
    assert OperatorSettings.from_env({"DEV_MODE": raw}).dev_mode is dev_mode


def test_settings_are_one_frozen_value_with_the_timings_inside() -> None:
    """Read once at start and passed down: nobody changes them in place, and a test or a deployment changes a
    period by replacing it here."""
    settings = OperatorSettings.from_env({})
    assert settings.sync.enqueue_delay == 1.0 and settings.sync.resync_period == 300.0
    assert (settings.lease.duration, settings.lease.renew_deadline, settings.lease.retry_period) == (15.0, 10.0, 2.0)
    assert settings.drain.requeue == 5.0 and settings.drain.workers == 50
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.sync.enqueue_delay = 0.0  # type: ignore[misc]
    faster = dataclasses.replace(settings, sync=SyncTiming(enqueue_delay=0.0))
    assert faster.sync.enqueue_delay == 0.0 and settings.sync.enqueue_delay == 1.0


def test_admission_reads_the_same_namespace_and_dev_mode() -> None:
    settings = OperatorSettings.from_env({"NAMESPACE": "sriov", "DEV_MODE": "TRUE"})
    assert settings.admission == Settings(namespace="sriov", dev_mode=True, nics=DEFAULT_SUPPORTED_NICS)
