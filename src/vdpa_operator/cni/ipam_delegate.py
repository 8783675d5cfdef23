"""A delegated IPAM plugin (SPEC §4): the executable named by `ipam.type`, found on CNI_PATH and run with the
environment and the complete network config this plugin received, its stderr going to ours.

Versions. A plugin refuses a config whose `cniVersion` it does not support (Debian bookworm's plugins, CNI 1.1.1,
stop at 1.0.0 and answer a 1.1.0 config with error 1). Such a config is re-sent at the highest version the plugin
supports that is not above the config's, with only the top-level `cniVersion` rewritten, and the `prevResult`'s:
the runtime writes that at the config's version, and Debian's static refuses a 1.1.0 prevResult in a 1.0.0 config
("result type supports [1.0.0] but unmarshalled CNIVersion is \"1.1.0\""). The rewrite is in place, so every
other byte (key order, numbers, the rest of `prevResult`) stays as it came. That is enough from 1.1.0 to 1.0.0:
1.1.0 only adds fields, which Go's decoders ignore. Below 1.0.0 a prevResult has another shape (`version` in each
IP), and none is converted: a plugin whose newest version is 0.x gets the prevResult's addresses as they came.

The plugin is asked VERSION only after it refused a version, or before STATUS and GC, and its answer is kept per
plugin binary in a `VersionCache` (a long-running caller shares one, so each binary is asked once). Verbs the
config's version (or the plugin) does not have are not run: CHECK before 0.4.0 (the plugins refuse it with "config
version does not allow CHECK"), STATUS and GC before 1.1.0 (or on a plugin without 1.1.0); they return as a
success, logged at debug, as libcni skips them.

Errors. A plugin's own error JSON is raised with the plugin's own code and message (prefixed with the plugin and
the verb); a plugin that failed without one is IPAM_FAILURE with its raw output; a plugin that cannot be found, or
an `ipam.type` that is a path, is INVALID_CONFIG.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vdpa_operator.cni.errors import (
    DECODING_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    IPAM_FAILURE,
    CniError,
)
from vdpa_operator.cni.ipam_result import IpamResult, parse_ipam_result, version_key

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
"""Seconds a delegated plugin may run before it is killed and the operation fails."""
CHECK_SINCE = (0, 4, 0)
STATUS_GC_SINCE = (1, 1, 0)
_OUTPUT_LIMIT = 4000
"""How much of a failed plugin's raw output an error carries."""

_FileIdentity = tuple[str, int, int, int, int]


class VersionCache:
    """The versions each plugin binary said it supports, keyed by its path and the file's identity (device, inode,
    size, mtime), so a plugin upgraded in place is asked again. Thread-safe; share one across `DelegatedIpam`s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[_FileIdentity, tuple[str, ...]] = {}

    def get(self, path: str) -> tuple[str, ...] | None:
        key = _identity(path)
        with self._lock:
            return self._versions.get(key) if key else None

    def put(self, path: str, versions: tuple[str, ...]) -> None:
        key = _identity(path)
        if key:
            with self._lock:
                self._versions[key] = versions


@dataclass(frozen=True)
class DelegatedIpam:
    """`ipam.type` run from CNI_PATH. Each method sets CNI_COMMAND to its verb over the `env` given (the rest of the
    environment is passed as it is) and sends `config`, the complete network config, on stdin."""

    plugin_type: str
    cni_path: str
    timeout: float = DEFAULT_TIMEOUT
    versions: VersionCache = dataclasses.field(default_factory=VersionCache, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.plugin_type or "/" in self.plugin_type or ".." in self.plugin_type or "\0" in self.plugin_type:
            raise CniError(INVALID_CONFIG, f"ipam.type {self.plugin_type!r} is not a plugin name",
                           "name an IPAM plugin installed in a CNI_PATH directory (like host-local); paths are "
                           "refused")

    def add(self, env: Mapping[str, str], config: bytes) -> IpamResult:
        output = self._run("ADD", env, config)
        source = f"IPAM plugin {self.plugin_type} ADD result"
        try:
            body = json.loads(output)
        except ValueError as error:
            raise CniError(DECODING_FAILURE, f"{source} is not JSON ({error})", _shown(output)) from None
        if not isinstance(body, dict):
            raise CniError(DECODING_FAILURE, f"{source} is not a JSON object", _shown(output))
        return parse_ipam_result(body, source=source)

    def delete(self, env: Mapping[str, str], config: bytes) -> None:
        self._run("DEL", env, config)

    def check(self, env: Mapping[str, str], config: bytes) -> None:
        version = config_version(config)
        if version_key(version) < CHECK_SINCE:
            logger.debug("IPAM plugin %s: CHECK not run, the config's version %s has no CHECK (0.4.0 and later)",
                         self.plugin_type, version)
            return
        self._run("CHECK", env, config)

    def status(self, env: Mapping[str, str], config: bytes) -> None:
        self._run_since_1_1("STATUS", env, config)

    def gc(self, env: Mapping[str, str], config: bytes) -> None:
        self._run_since_1_1("GC", env, config)

    def executable(self) -> str:
        """The first regular file named `plugin_type` in CNI_PATH's directories, as libcni's `FindInPath`."""
        directories = [directory for directory in self.cni_path.split(os.pathsep) if directory]
        if not directories:
            raise CniError(INVALID_ENVIRONMENT, f"CNI_PATH is empty: cannot look up IPAM plugin {self.plugin_type}",
                           "the runtime must pass CNI_PATH (the directories holding CNI plugins)")
        for directory in directories:
            candidate = os.path.join(directory, self.plugin_type)
            if os.path.isfile(candidate):
                return candidate
        raise CniError(INVALID_CONFIG, f"IPAM plugin {self.plugin_type} not found in CNI_PATH {self.cni_path}",
                       "install the plugin into one of those directories, or fix ipam.type in the network config")

    # --- versions -------------------------------------------------------------------------------------------

    def _run(self, verb: str, env: Mapping[str, str], config: bytes) -> bytes:
        path = self.executable()
        version = config_version(config)
        supported = self.versions.get(path)
        if supported is not None:
            return self._invoke(path, verb, env, self._at(config, version, self._negotiated(version, supported)))
        try:
            return self._invoke(path, verb, env, config)
        except CniError as refused:
            if refused.code != INCOMPATIBLE_VERSION:
                raise
            try:
                supported = self._supported_versions(path, env, version)
            except CniError:
                raise refused from None
            usable = highest_version(supported, version)
            if usable is None or usable == version:
                raise
            return self._invoke(path, verb, env, self._at(config, version, usable))

    def _run_since_1_1(self, verb: str, env: Mapping[str, str], config: bytes) -> None:
        version = config_version(config)
        if version_key(version) < STATUS_GC_SINCE:
            logger.debug("IPAM plugin %s: %s not run, the config's version %s has no %s (1.1.0 and later)",
                         self.plugin_type, verb, version, verb)
            return
        path = self.executable()
        supported = self.versions.get(path) or self._supported_versions(path, env, version)
        usable = highest_version(supported, version)
        if usable is None or version_key(usable) < STATUS_GC_SINCE:
            logger.debug("IPAM plugin %s: %s not run, the plugin supports CNI versions %s only (%s is a 1.1.0 verb)",
                         self.plugin_type, verb, ", ".join(supported), verb)
            return
        self._invoke(path, verb, env, self._at(config, version, usable))

    def _supported_versions(self, path: str, env: Mapping[str, str], version: str) -> tuple[str, ...]:
        output = self._invoke(path, "VERSION", env, json.dumps({"cniVersion": version}).encode())
        source = f"IPAM plugin {self.plugin_type} VERSION result"
        try:
            body = json.loads(output)
            supported = tuple(body["supportedVersions"])
            for item in supported:
                version_key(item)
        except (ValueError, TypeError, KeyError) as error:
            raise CniError(DECODING_FAILURE, f"{source}: no list of versions in supportedVersions ({error})",
                           _shown(output)) from None
        self.versions.put(path, supported)
        return supported

    def _negotiated(self, version: str, supported: tuple[str, ...]) -> str:
        usable = highest_version(supported, version)
        if usable is None:
            raise CniError(INCOMPATIBLE_VERSION, f"IPAM plugin {self.plugin_type} supports no CNI version up to "
                           f"the config's {version}", f"it supports {', '.join(supported)}; use a config version "
                           "it supports or a newer plugin")
        return usable

    def _at(self, config: bytes, version: str, usable: str) -> bytes:
        if usable == version:
            return config
        logger.debug("IPAM plugin %s does not support CNI %s: sending the config as %s", self.plugin_type, version,
                     usable)
        return with_cni_version(config, usable)

    # --- running --------------------------------------------------------------------------------------------

    def _invoke(self, path: str, verb: str, env: Mapping[str, str], stdin: bytes) -> bytes:
        try:
            done = subprocess.run([path], input=stdin, stdout=subprocess.PIPE, stderr=None,
                                  env={**env, "CNI_COMMAND": verb}, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise CniError(IPAM_FAILURE, f"IPAM plugin {path} did not finish {verb} within {self.timeout:g} s; "
                           "killed it", "its stderr (passed on to ours) may say where it hung; raise the timeout only "
                           "if the plugin is known to be that slow") from None
        except OSError as error:
            raise CniError(IPAM_FAILURE, f"cannot run IPAM plugin {path}: {error.strerror}",
                           "it must be an executable CNI plugin for this machine") from None
        if done.returncode == 0:
            return done.stdout
        raise self._failure(path, verb, done.returncode, done.stdout)

    def _failure(self, path: str, verb: str, returncode: int, output: bytes) -> CniError:
        reported = _cni_error(output)
        if reported is not None:
            code, message, details = reported
            return CniError(code, f"IPAM plugin {self.plugin_type} {verb}: {message}", details)
        ended = (f"was killed by {signal.Signals(-returncode).name}" if -returncode in signal.valid_signals()
                 else f"exited with status {returncode}")
        return CniError(IPAM_FAILURE, f"IPAM plugin {path} {ended} on {verb} without a CNI error on stdout",
                        _shown(output) if output.strip() else "no output on stdout; its stderr above may say why")


def config_version(config: bytes) -> str:
    """The config's top-level `cniVersion`; none reads as 0.1.0, as libcni reads it."""
    try:
        body = json.loads(config)
    except ValueError as error:
        raise CniError(DECODING_FAILURE, f"the network config is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise CniError(DECODING_FAILURE, "the network config is not a JSON object")
    version = body.get("cniVersion") or "0.1.0"
    try:
        version_key(version)
    except ValueError as error:
        raise CniError(INVALID_CONFIG, f"network config: cniVersion: {error}") from None
    return str(version)


def highest_version(supported: tuple[str, ...], version: str) -> str | None:
    """The highest of `supported` that is not above `version`."""
    limit = version_key(version)
    usable = [item for item in supported if version_key(item) <= limit]
    return max(usable, key=version_key) if usable else None


def with_cni_version(config: bytes, version: str) -> bytes:
    """`config` with its top-level `cniVersion` value replaced, and its `prevResult`'s (the runtime writes that at
    the config's version, and a plugin refuses a prevResult of a version it does not have); every other byte as it
    was."""
    try:
        text = config.decode()
    except UnicodeDecodeError as error:
        raise CniError(DECODING_FAILURE, f"the network config is not UTF-8: {error}") from None
    members = _members(text, 0)
    spans = [span for key, span in members if key == "cniVersion"]
    if not spans:
        raise CniError(INVALID_CONFIG, "the network config has no cniVersion to rewrite")
    for key, (start, _) in members:
        if key == "prevResult" and text[start] == "{":
            spans.extend(span for inner, span in _members(text, start) if inner == "cniVersion")
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + json.dumps(version) + text[end:]
    return text.encode()


def _members(text: str, index: int) -> list[tuple[str, tuple[int, int]]]:
    """Each key of the JSON object at `text[index:]` with the span of its value."""
    decoder = json.JSONDecoder()
    found: list[tuple[str, tuple[int, int]]] = []
    index = _skip_space(text, index)
    if text[index:index + 1] != "{":
        raise CniError(DECODING_FAILURE, "the network config is not a JSON object")
    index = _skip_space(text, index + 1)
    closing = text[index:index + 1] == "}"
    try:
        while not closing:
            key, index = decoder.raw_decode(text, index)
            index = _skip_space(text, index)
            if not isinstance(key, str) or text[index:index + 1] != ":":
                raise ValueError(f"no key before char {index}")
            start = _skip_space(text, index + 1)
            _, end = decoder.raw_decode(text, start)
            found.append((key, (start, end)))
            index = _skip_space(text, end)
            if text[index:index + 1] not in (",", "}"):
                raise ValueError(f"expected ',' or '}}' at char {index}")
            closing = text[index] == "}"
            index = _skip_space(text, index + 1)
    except ValueError as error:
        raise CniError(DECODING_FAILURE, f"the network config is not JSON: {error}") from None
    return found


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\n\r":
        index += 1
    return index


def _cni_error(output: bytes) -> tuple[int, str, str] | None:
    """(code, msg, details) of a plugin's error JSON, or None when it printed none."""
    try:
        body: Any = json.loads(output)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    code, message, details = body.get("code"), body.get("msg"), body.get("details")
    if isinstance(code, bool) or not isinstance(code, int) or code <= 0:
        return None
    return code, str(message or "(no msg)"), str(details or "")


def _shown(output: bytes) -> str:
    text = output.decode(errors="replace").strip()
    return text if len(text) <= _OUTPUT_LIMIT else text[:_OUTPUT_LIMIT] + f"… ({len(text)} characters)"


def _identity(path: str) -> _FileIdentity | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return path, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns
