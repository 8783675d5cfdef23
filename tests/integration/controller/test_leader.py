"""`LeaderElector` against the embedded API server: client-go's Lease rules (acquire a free or expired Lease,
renew while holding it, count transitions, give up after the renew deadline) with lease durations of a second."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from lightkube import AsyncClient
from lightkube.types import PatchType
from operator_harness import NS, client_for

from vdpa_operator.controller.leader import LEASE_NAME, LeaderElector
from vdpa_operator.kubeclient import LeaseResource
from vdpa_operator.sim.apiserver import ServerHandle

LEASE = 1.0
RETRY = 0.1
MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
"""metav1.MicroTime as the API serialises it."""


def elector(client: AsyncClient, identity: str, renew_deadline: float) -> LeaderElector:
    return LeaderElector(client, NS, identity, lease_duration=LEASE, renew_deadline=renew_deadline,
                         retry_period=RETRY)


@contextlib.asynccontextmanager
async def candidate(server: ServerHandle, identity: str, *, renew_deadline: float = 0.6
                    ) -> AsyncIterator[tuple[LeaderElector, asyncio.Task[None]]]:
    """A candidate running `run()` on its own client; stopped (its task cancelled) on exit."""
    client = client_for(server)
    candidate = elector(client, identity, renew_deadline)
    task = asyncio.create_task(candidate.run())
    try:
        yield candidate, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


async def lease_spec(client: AsyncClient) -> dict[str, Any]:
    lease = await client.get(LeaseResource, LEASE_NAME, namespace=NS)
    return dict(lease["spec"])


def parse(micro_time: str) -> datetime.datetime:
    assert MICRO_TIME.fullmatch(micro_time), micro_time
    return datetime.datetime.fromisoformat(micro_time.replace("Z", "+00:00"))


async def leading_within(candidate: LeaderElector, seconds: float) -> bool:
    try:
        await asyncio.wait_for(candidate.leading.wait(), seconds)
    except TimeoutError:
        return False
    return True


def test_first_candidate_creates_the_lease_and_renews_it(server: ServerHandle) -> None:
    async def main() -> None:
        reader = client_for(server)
        async with candidate(server, "a") as (a, _):
            assert await leading_within(a, 2)
            spec = await lease_spec(reader)
            assert spec["holderIdentity"] == "a"
            assert spec["leaseDurationSeconds"] == int(LEASE)
            assert spec["leaseTransitions"] == 0
            acquired, renewed = parse(spec["acquireTime"]), parse(spec["renewTime"])
            await asyncio.sleep(5 * RETRY)
            later = await lease_spec(reader)
            assert parse(later["renewTime"]) > renewed, "the holder renews every retry period"
            assert parse(later["acquireTime"]) == acquired
            assert later["leaseTransitions"] == 0
        await reader.close()

    asyncio.run(main())


def test_second_candidate_waits_while_the_holder_renews_then_takes_over(server: ServerHandle) -> None:
    async def main() -> None:
        reader = client_for(server)
        async with candidate(server, "a") as (a, a_task), candidate(server, "b") as (b, _):
            assert await leading_within(a, 2)
            assert not await leading_within(b, 1.5 * LEASE), "b took a Lease that a kept renewing"
            assert (await lease_spec(reader))["holderIdentity"] == "a"

            a_task.cancel()  # a stops renewing without releasing the Lease
            with contextlib.suppress(asyncio.CancelledError):
                await a_task
            last_renewal = parse((await lease_spec(reader))["renewTime"])
            stopped = time.monotonic()
            assert await leading_within(b, LEASE + 2)
            waited = time.monotonic() - stopped
            taken = parse((await lease_spec(reader))["acquireTime"])
            assert taken - last_renewal >= datetime.timedelta(seconds=LEASE), "taken before the Lease expired"
            assert waited < LEASE + 1.5
            spec = await lease_spec(reader)
            assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
        await reader.close()

    asyncio.run(main())


def test_candidates_racing_for_a_free_lease_elect_one(server: ServerHandle) -> None:
    async def main() -> None:
        reader = client_for(server)
        async with contextlib.AsyncExitStack() as stack:
            candidates = [(await stack.enter_async_context(candidate(server, name)))[0] for name in "abcd"]
            await asyncio.sleep(0.5)
            leaders = [c.identity for c in candidates if c.leading.is_set()]
            assert len(leaders) == 1
            spec = await lease_spec(reader)
            assert spec["holderIdentity"] == leaders[0]
            assert spec["leaseTransitions"] == 0
        await reader.close()

    asyncio.run(main())


def test_restarted_holder_with_the_same_identity_leads_at_once(server: ServerHandle) -> None:
    async def main() -> None:
        reader = client_for(server)
        async with candidate(server, "a") as (a, _):
            assert await leading_within(a, 2)
        async with candidate(server, "a") as (again, _):
            assert await leading_within(again, LEASE / 2), "its own unexpired Lease is not someone else's"
            assert (await lease_spec(reader))["leaseTransitions"] == 0
        await reader.close()

    asyncio.run(main())


def test_released_lease_is_taken_at_once(server: ServerHandle) -> None:
    """An empty holderIdentity (a holder that released the Lease) is free, however recent its renewTime."""
    async def main() -> None:
        reader = client_for(server)
        async with candidate(server, "a") as (a, a_task):
            assert await leading_within(a, 2)
            a_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await a_task
            await reader.patch(LeaseResource, LEASE_NAME, {"spec": {"holderIdentity": ""}}, namespace=NS,
                               patch_type=PatchType.MERGE)
            async with candidate(server, "b") as (b, _):
                assert await leading_within(b, LEASE / 2)
                spec = await lease_spec(reader)
                assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
        await reader.close()

    asyncio.run(main())


def test_holder_gives_up_leadership_when_renewals_fail_past_the_deadline(server: ServerHandle) -> None:
    async def main() -> None:
        deadline = 0.4
        async with candidate(server, "a", renew_deadline=deadline) as (a, a_task):
            assert await leading_within(a, 2)
            await asyncio.sleep(3 * RETRY)
            assert not a_task.done()
            stopped = time.monotonic()
            await asyncio.to_thread(server.stop)
            await asyncio.wait_for(asyncio.shield(a_task), 5)  # run() returns; nothing raised
            elapsed = time.monotonic() - stopped
            assert not a.leading.is_set()
            # The deadline runs from the last successful renewal, at most one retry period before the stop.
            assert deadline - RETRY <= elapsed < deadline + 2.0

    asyncio.run(main())
