"""`/healthz`, `/readyz` and `/metrics` on one plain-HTTP listener, as controller-runtime's probe and metrics
servers answer them: 200 "ok" when the check passes, 500 with the failing check's name otherwise."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from vdpa_operator.controller.metrics import CONTENT_TYPE, Metrics

Check = Callable[[], bool]


def health_app(metrics: Metrics, ready_checks: Mapping[str, Check]) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_request: web.Request) -> web.Response:
        failing = [name for name, check in ready_checks.items() if not check()]
        if failing:
            return web.Response(status=500, text="".join(f"[-]{n} failed\n" for n in failing) + "readyz check failed")
        return web.Response(text="ok")

    async def metrics_handler(_request: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app
