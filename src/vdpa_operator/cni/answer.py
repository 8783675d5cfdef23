"""One CNI request in, what the executable prints and its exit code out — shared by the node server and the
shim's in-process fallback. Every failure becomes the spec's error JSON: a CniError with its code, a Host
error as 100 with its operation, object and errno, anything else as libcni's 999 (and a traceback in the log)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from vdpa_operator import bounded
from vdpa_operator.cni.errors import HOST_FAILURE, INTERNAL, CniError
from vdpa_operator.cni.spec import LATEST, CniRequest, parse_request
from vdpa_operator.host.errors import HostError

logger = logging.getLogger(__name__)

Handler = Callable[[CniRequest], "dict[str, Any] | None"]


def answer(handle: Handler, env: Mapping[str, str], stdin: bytes, device_info: str | None) -> tuple[int, str]:
    request: CniRequest | None = None
    try:
        request = parse_request(env, stdin, device_info)
        result = handle(request)
    except CniError as exc:
        logger.warning("%s %s: CNI error %d: %s", env.get("CNI_COMMAND", "?"), env.get("CNI_CONTAINERID", "")[:12],
                       exc.code, exc)
        return 1, json.dumps(exc.to_json(_version_of(request, stdin)))
    except HostError as exc:
        logger.warning("%s: %s", env.get("CNI_COMMAND", "?"), exc)
        return 1, json.dumps(CniError(HOST_FAILURE, str(exc)).to_json(_version_of(request, stdin)))
    except Exception as exc:
        logger.exception("%s failed", env.get("CNI_COMMAND", "?"))
        error = CniError(INTERNAL, f"internal error: {exc}", type(exc).__name__)
        return 1, json.dumps(error.to_json(_version_of(request, stdin)))
    return 0, json.dumps(result) if result is not None else ""


def _version_of(request: CniRequest | None, stdin: bytes) -> str:
    """The version to answer an error in: the request's, else (the config itself is wrong) its cniVersion as far
    as it can be read, else the latest."""
    if request is not None:
        return request.config.cni_version
    try:
        version = bounded.loads_json(stdin, "stdin").get("cniVersion")
    except (ValueError, AttributeError):
        return LATEST
    return version if isinstance(version, str) and version else LATEST
