"""How the operator is deployed, read from the same environment variables as upstream's operator."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from vdpa_operator.api import golang
from vdpa_operator.api.admission import DEFAULT_NAMESPACE
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS, SupportedNics
from vdpa_operator.errors import VdpaOperatorError

log = logging.getLogger(__name__)

DEFAULT_RESOURCE_PREFIX = "openshift.io"
DEFAULT_STALE_DELAY_MINUTES = 30
"""Upstream `DefaultNodeStateCleanupDelayMinutes`."""
MAX_DELAY_MINUTES = (2**63 - 1) // (60 * 10**9)
"""The longest delay a Go `time.Duration` holds; beyond it upstream's arithmetic would overflow."""


class SettingsError(VdpaOperatorError, ValueError):
    """A setting the operator cannot start with; the message names the variable and what to set."""


@dataclass(frozen=True)
class OperatorSettings:
    namespace: str = DEFAULT_NAMESPACE
    resource_prefix: str = DEFAULT_RESOURCE_PREFIX
    stale_delay_minutes: int = DEFAULT_STALE_DELAY_MINUTES
    """Minutes a NodeState outlives its node (0: deleted at once)."""
    dev_mode: bool = False
    nics: SupportedNics = field(default=DEFAULT_SUPPORTED_NICS)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperatorSettings:
        """`NAMESPACE`, `RESOURCE_PREFIX`, `STALE_NODE_STATE_CLEANUP_DELAY_MINUTES`, `DEV_MODE=TRUE`.

        An empty RESOURCE_PREFIX stops the operator, as upstream's; a bad cleanup delay falls back to the
        default with an error in the log, also as upstream."""
        prefix = env.get("RESOURCE_PREFIX", DEFAULT_RESOURCE_PREFIX)
        if not prefix:
            raise SettingsError("RESOURCE_PREFIX is empty: set it to the device-plugin resource prefix, "
                                f"e.g. {DEFAULT_RESOURCE_PREFIX}")
        delay = DEFAULT_STALE_DELAY_MINUTES
        raw_delay = env.get("STALE_NODE_STATE_CLEANUP_DELAY_MINUTES")
        if raw_delay is not None:
            try:
                delay = golang.atoi(raw_delay)
                if not 0 <= delay <= MAX_DELAY_MINUTES:
                    raise ValueError("out of range")
            except ValueError:
                delay = DEFAULT_STALE_DELAY_MINUTES
                log.error("invalid STALE_NODE_STATE_CLEANUP_DELAY_MINUTES=%r (want minutes >= 0); using %d",
                          raw_delay, delay)
        return cls(
            namespace=env.get("NAMESPACE") or DEFAULT_NAMESPACE,
            resource_prefix=prefix,
            stale_delay_minutes=delay,
            dev_mode=env.get("DEV_MODE", "") == "TRUE",
        )
