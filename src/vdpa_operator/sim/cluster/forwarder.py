"""TCP relays between network namespaces: an address in one namespace that is a service in another, byte for
byte (TLS passes through, so certificates hold).

`sim up` runs one for the API server: pods with `hostNetwork` run in their node's namespace, where the machine's
127.0.0.1 is not, so this listens on `127.0.0.1:<port>` inside each node namespace and connects to the same
address in the machine's. The kubeconfig's URL then holds in both places, and in-cluster clients use
`KUBERNETES_SERVICE_HOST=127.0.0.1`, `KUBERNETES_SERVICE_PORT=<port>`; no link or address is added anywhere.
The other way round (`--listen 127.0.0.1:W --connect POD_NETNS=127.0.0.1:6443`) it makes a pod's port reachable
where the API server calls a webhook Service.

The relaying itself is `sim/relay.py`, which the kubelet uses too. Run as
`python -m vdpa_operator.sim.cluster.forwarder --listen [NETNS=]HOST:PORT… --connect [NETNS=]HOST:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from vdpa_operator.sim.relay import Endpoint, listener, relay


async def serve(listen: list[Endpoint], target: Endpoint, stop: asyncio.Event) -> None:
    servers = [await asyncio.start_server(lambda r, w: relay(target, r, w), sock=listener(endpoint))
               for endpoint in listen]
    print(f"relaying {', '.join(map(str, listen))} to {target}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


async def _main(listen: list[Endpoint], target: Endpoint) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(listen, target, stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", action="append", required=True, type=Endpoint.parse,
                        metavar="[NETNS=]HOST:PORT")
    parser.add_argument("--connect", required=True, type=Endpoint.parse, metavar="[NETNS=]HOST:PORT")
    args = parser.parse_args()
    asyncio.run(_main(args.listen, args.connect))


if __name__ == "__main__":
    main()
