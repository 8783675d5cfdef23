"""One CNI request in, what the executable prints and its exit code out — shared by the node server and the
shim's in-process fallback. Every failure becomes the spec's error JSON: a CniError with its code, a Host
error as 100 with its operation, object and errno, anything else as libcni's 999 (and a traceback in the log)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from vdpa_operator.cni.errors import HOST_FAILURE, INTERNAL, CniError
from vdpa_operator.cni.spec import LATEST, CniRequest, parse_request
from vdpa_operator.host.errors import HostError

logger = logging.getLogger(__name__)

Handler = Callable[[CniRequest], "dict[str, Any] | None"]


def answer(handle: Handler, env: Mapping[str, str], stdin: bytes, device_info: str | None) -> tuple[int, str]:
    version = _version_of(stdin)
    try:
        request = parse_request(env, stdin, device_info)
        version = request.config.cni_version
        result = handle(request)
    except CniError as exc:
        logger.warning("%s %s: CNI error %d: %s", env.get("CNI_COMMAND", "?"), env.get("CNI_CONTAINERID", "")[:12],
                       exc.code, exc)
        return 1, json.dumps(exc.to_json(version))
    except HostError as exc:
        logger.warning("%s: %s", env.get("CNI_COMMAND", "?"), exc)
        return 1, json.dumps(CniError(HOST_FAILURE, str(exc)).to_json(version))
    except Exception as exc:
        logger.exception("%s failed", env.get("CNI_COMMAND", "?"))
        return 1, json.dumps(CniError(INTERNAL, f"internal error: {exc}", type(exc).__name__).to_json(version))
    return 0, json.dumps(result) if result is not None else ""


def _version_of(stdin: bytes) -> str:
    """The config's cniVersion for an error about the config itself (or the latest when unreadable)."""
    try:
        version = json.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError):
        return LATEST
    return version if isinstance(version, str) and version else LATEST
