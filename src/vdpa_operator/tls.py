"""A self-signed CA and the server certificates it issues, in memory as PEM.

One issuer for the whole project: the operator's webhook certificate (`controller.certs` keeps it on disk or in a
Secret), the simulated API server's `--tls`, and the tests' webhook servers. Keys are P-256; certificates start a
few minutes in the past so a node whose clock is a little behind still accepts them.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vdpa_operator.fileio import SECRET_MODE, write_atomically

DAY = datetime.timedelta(days=1)
CLOCK_SKEW = datetime.timedelta(minutes=5)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS 1.2+ server context (upstream's webhook defaults to TLS 1.2 minimum)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        """A server context for this certificate (the ssl module loads keys from files only)."""
        with tempfile.TemporaryDirectory(prefix="vdpa-tls-") as tmp:
            cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
            write_atomically(cert, self.cert_pem, mode=0o644)
            write_atomically(key, self.key_pem, mode=SECRET_MODE)
            return server_context(cert, key)


class CertificateAuthority:
    """A self-signed CA that issues server certificates for host names and IP addresses."""

    def __init__(self, name: str = "vdpa-sim-ca", *, lifetime: datetime.timedelta = DAY,
                 now: datetime.datetime | None = None) -> None:
        now = now or datetime.datetime.now(datetime.UTC)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self._cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def load(cls, cert_pem: bytes, key_pem: bytes, *, now: datetime.datetime | None = None) -> CertificateAuthority:
        """A CA kept from an earlier run; `ValueError` when the PEM is no CA of ours, or it has expired."""
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the CA key is not an EC private key")
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(serialization.Encoding.DER, spki) != \
                cert.public_key().public_bytes(serialization.Encoding.DER, spki):
            raise ValueError("the CA key does not belong to the CA certificate")
        if cert.not_valid_after_utc <= (now or datetime.datetime.now(datetime.UTC)):
            raise ValueError(f"the CA certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
        ca = cls.__new__(cls)
        ca._key, ca._cert, ca.cert_pem = key, cert, cert_pem
        return ca

    @property
    def key_pem(self) -> bytes:
        """The CA's private key (PEM, PKCS#8), to keep it across restarts: write it 0600."""
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    @property
    def bundle(self) -> str:
        """The CA certificate as a webhook's `caBundle` or a kubeconfig's `certificate-authority-data`."""
        return base64.b64encode(self.cert_pem).decode()

    def issue(self, hosts: Iterable[str], *, lifetime: datetime.timedelta = DAY,
              now: datetime.datetime | None = None) -> KeyPair:
        """A server certificate valid for each of `hosts` (DNS names or IP addresses); the first is its CN."""
        hosts = list(hosts)
        if not hosts:
            raise ValueError("a server certificate needs at least one host name or IP address")
        now = now or datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self._cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + lifetime)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem)
