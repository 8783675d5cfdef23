"""The operator's settings: one frozen value read once at start (from upstream's environment variables, which
`vdpactl operator`'s flags override) and handed to every controller. Timing lives here too, so a test or a
deployment changes a period in one place and no module keeps a clock of its own.

`vdpactl validate`/`render` read the same variables through `from_env`, so they answer for the operator the
environment describes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from vdpa_operator.api import golang
from vdpa_operator.api.admission import DEFAULT_NAMESPACE
from vdpa_operator.api.admission import Settings as AdmissionSettings
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
class Backoff:
    """controller-runtime's per-key exponential backoff after a failed reconcile."""

    start: float = 0.5
    max: float = 60.0

    def after(self, failures: int) -> float:
        """Seconds before the next try after `failures` failures in a row."""
        return min(self.start * 2.0 ** min(failures - 1, 64), self.max)


@dataclass(frozen=True)
class SyncTiming:
    """The policy sync's clock and width."""

    enqueue_delay: float = 1.0
    """Upstream enqueues the sync one second after an event, so a burst of edits costs one pass."""
    resync_period: float = 300.0
    """Upstream `ResyncPeriod`: a full sync every 5 minutes even when nothing is seen to change."""
    no_config_requeue: float = 5.0
    """Upstream `DrainControllerRequeueTime`, used while `SriovOperatorConfig/default` is missing."""
    write_concurrency: int = 8


@dataclass(frozen=True)
class DrainTiming:
    requeue: float = 5.0
    """Upstream `DrainControllerRequeueTime`: how soon a node waiting for a pool slot or for pods is looked at
    again."""
    workers: int = 50
    """Upstream `MaxConcurrentReconciles` of the drain controller."""


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's leader-election timings (controller-runtime's defaults)."""

    duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True)
class OperatorSettings:
    namespace: str = DEFAULT_NAMESPACE
    resource_prefix: str = DEFAULT_RESOURCE_PREFIX
    stale_delay_minutes: int = DEFAULT_STALE_DELAY_MINUTES
    """Minutes a NodeState outlives its node (0: deleted at once)."""
    dev_mode: bool = False
    nics: SupportedNics = field(default=DEFAULT_SUPPORTED_NICS)
    """The built-in list until `start` reads the `supported-nic-ids` ConfigMap."""
    sync: SyncTiming = field(default_factory=SyncTiming)
    drain: DrainTiming = field(default_factory=DrainTiming)
    lease: LeaseTiming = field(default_factory=LeaseTiming)
    backoff: Backoff = field(default_factory=Backoff)

    @property
    def admission(self) -> AdmissionSettings:
        """What the admission rules read of these settings (the webhook's, and `vdpactl validate`'s)."""
        return AdmissionSettings(namespace=self.namespace, dev_mode=self.dev_mode, nics=self.nics)

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
