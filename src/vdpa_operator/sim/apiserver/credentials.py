"""The embedded API server's secrets: the admin token, the key ServiceAccount tokens are signed with, and the CA
its serving certificate comes from (clients trust it through the kubeconfig's certificate-authority-data).

The server speaks HTTPS by default, as kube-apiserver's secure port does: kubectl (client-go) sends a bearer
token over TLS only, so without it the token in the kubeconfig would never reach the server.

With a state directory they are kept in `<dir>/auth/` (a 0700 directory; keys and the token 0600 from the first
byte), so kubeconfigs and tokens handed out stay good across restarts; each missing piece is made anew. Without
one they live as long as the process.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from vdpa_operator.fileio import SECRET_MODE, make_private_dir, write_atomically
from vdpa_operator.tls import CertificateAuthority

AUTH_DIR = "auth"
ADMIN_TOKEN_FILE = "admin-token"
SIGNING_KEY_FILE = "service-account-signing.key"
CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
CA_VALIDITY = datetime.timedelta(days=3650)
SERVING_VALIDITY = datetime.timedelta(days=365)
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
"""Names every serving certificate carries, besides the address the server was told to listen on."""

T = TypeVar("T")


@dataclass(frozen=True)
class Credentials:
    """The admin token, the ServiceAccount token signing key and the serving CA of one API server."""

    admin_token: str
    signing_key: bytes
    ca: CertificateAuthority

    @classmethod
    def generate(cls) -> Credentials:
        return cls(_new_token(), _new_key(), _new_ca())

    @classmethod
    def load_or_create(cls, directory: Path | None) -> Credentials:
        """Those kept in `<directory>/auth/`, each made and written there the first time; fresh ones in memory
        when `directory` is None. `ValueError` naming the file when a kept one is unreadable."""
        if directory is None:
            return cls.generate()
        auth = directory / AUTH_DIR
        make_private_dir(auth)
        token = _kept(auth / ADMIN_TOKEN_FILE, _new_token, lambda raw: _token(raw.decode("ascii").strip()),
                      lambda value: value.encode() + b"\n")
        key = _kept(auth / SIGNING_KEY_FILE, _new_key, lambda raw: _key(base64.b64decode(raw.strip(), validate=True)),
                    lambda value: base64.b64encode(value) + b"\n")
        ca_cert, ca_key = auth / CA_CERT_FILE, auth / CA_KEY_FILE
        try:
            ca = CertificateAuthority.load(ca_cert.read_bytes(), ca_key.read_bytes())
        except FileNotFoundError:
            ca = _new_ca()
            write_atomically(ca_key, ca.key_pem, mode=SECRET_MODE)
            write_atomically(ca_cert, ca.cert_pem, mode=0o644)
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(_unreadable(ca_key, err)) from err
        return cls(token, key, ca)

    def serving_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context whose certificate (from this CA) names `host` and this machine's loopback names."""
        names = [host] if host and host not in ("0.0.0.0", "::") else []
        names += [n for n in LOCAL_NAMES if n not in names]
        return self.ca.issue(names, lifetime=SERVING_VALIDITY).server_context()

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's CA only."""
        return ssl.create_default_context(cadata=self.ca.cert_pem.decode())


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def _new_key() -> bytes:
    return secrets.token_bytes(32)


def _new_ca() -> CertificateAuthority:
    return CertificateAuthority("vdpa-sim-apiserver-ca", lifetime=CA_VALIDITY)


def _token(text: str) -> str:
    if len(text) < 16:
        raise ValueError("too short")
    return text


def _key(raw: bytes) -> bytes:
    if len(raw) < 32:
        raise ValueError("too short")
    return raw


def _unreadable(path: Path, err: Exception) -> str:
    return (f"{path}: unreadable ({err}); remove it to make a new one (kubeconfigs and tokens handed out before "
            "then stop working)")


def _kept(path: Path, make: Callable[[], T], parse: Callable[[bytes], T], encode: Callable[[T], bytes]) -> T:
    """The value kept in `path`, or a new one written there (0600)."""
    try:
        return parse(path.read_bytes())
    except FileNotFoundError:
        value = make()
        write_atomically(path, encode(value), mode=SECRET_MODE)
        return value
    except (OSError, ValueError, UnicodeDecodeError, binascii.Error) as err:
        raise ValueError(_unreadable(path, err)) from err
