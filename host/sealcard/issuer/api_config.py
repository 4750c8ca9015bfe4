"""Settings of the issuer's HTTPS API (``[api]`` of config.toml) and its TLS certificate.

    [api]
    listen = "127.0.0.1:8443"
    tls_cert = "tls/server.pem"          # made by `issuer init` (self-signed), or the bank's
    tls_key = "tls/server-key.pem"       # 0600; never printed
    provider_roots = ["provider-root.pem"]   # card provider roots that activation trusts
    session_minutes = 30
    account_failures = 5                 # failed sign-ins per login per window
    address_failures = 30                # failed sign-ins per address per window
    failure_window_minutes = 15

Relative paths are relative to the issuer home. `issuer init` writes this section and a
self-signed certificate (EC P-256, the host's names and 127.0.0.1 in its subjectAltName)
unless the operator names one (`--tls-cert`, `--tls-key`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealcard.errors import ConfigurationError

SECTION = "api"
DEFAULT_LISTEN = "127.0.0.1:8443"
DEFAULT_CERT = "tls/server.pem"
DEFAULT_KEY = "tls/server-key.pem"
CERT_DAYS = 825  # the longest a browser accepts for a server certificate


@dataclass(frozen=True)
class ApiSettings:
    """Where the API listens, its TLS files, trusted provider roots and account limits."""

    host: str
    port: int
    tls_cert: Path
    tls_key: Path
    provider_roots: tuple[Path, ...]
    session_minutes: int
    account_failures: int
    address_failures: int
    failure_window_minutes: int


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8443`` for IPv6)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ConfigurationError(f"listen address {value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _int(section: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = section.get(name, default)
    if not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(f"[{SECTION}] {name} must be an integer {low}..{high}")
    return value


def load_api_settings(home: Path, config: dict[str, Any]) -> ApiSettings:
    """The ``[api]`` section (defaults where it is silent)."""
    section = config.get(SECTION, {})
    if not isinstance(section, dict):
        raise ConfigurationError(f"[{SECTION}] must be a table")
    host, port = parse_listen(str(section.get("listen", DEFAULT_LISTEN)))
    roots = section.get("provider_roots", [])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise ConfigurationError(f"[{SECTION}] provider_roots must be a list of file names")

    def path(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else home / p

    return ApiSettings(
        host=host,
        port=port,
        tls_cert=path(str(section.get("tls_cert", DEFAULT_CERT))),
        tls_key=path(str(section.get("tls_key", DEFAULT_KEY))),
        provider_roots=tuple(path(r) for r in roots),
        session_minutes=_int(section, "session_minutes", 30, 1, 24 * 60),
        account_failures=_int(section, "account_failures", 5, 1, 1000),
        address_failures=_int(section, "address_failures", 30, 1, 100_000),
        failure_window_minutes=_int(section, "failure_window_minutes", 15, 1, 24 * 60),
    )


def _names() -> list[x509.GeneralName]:
    hostnames = {"localhost", socket.gethostname(), socket.getfqdn()}
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in sorted(hostnames) if h]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    return names


def make_self_signed_tls(cert_path: Path, key_path: Path, *, now: dt.datetime | None = None) -> str:
    """A fresh EC P-256 key (file mode 0600, created exclusively) and a self-signed server
    certificate for this host; returns the certificate's SHA-256 fingerprint (hex), which
    users compare or pin (`sealcard user activate --issuer-cert`)."""
    when = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, socket.getfqdn() or "localhost")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(when - dt.timedelta(minutes=5))
        .not_valid_after(when + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(_names()), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem_key)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate.fingerprint(hashes.SHA256()).hex()


def certificate_fingerprint(cert_path: Path) -> str:
    """SHA-256 fingerprint (hex) of a PEM certificate."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the TLS certificate {cert_path}: {exc}") from None
    return certificate.fingerprint(hashes.SHA256()).hex()


def _check_pair(cert_path: Path, key_path: Path) -> None:
    """The operator's certificate and key must load and belong together."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"cannot load the TLS certificate {cert_path} or its key {key_path}"
            f" (PEM, key not encrypted): {type(exc).__name__}"
        ) from None
    form = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if certificate.public_key().public_bytes(*form) != key.public_key().public_bytes(*form):
        raise ConfigurationError(f"{key_path} is not the key of {cert_path}")


def init_api(
    home: Path, tls_cert: Path | None = None, tls_key: Path | None = None
) -> tuple[ApiSettings, bool, str]:
    """Write ``[api]`` into config.toml if missing, with the operator's TLS files or a
    self-signed certificate made now. Returns (settings, whether a certificate was made, its
    fingerprint). An existing ``[api]`` section is kept."""
    from sealcard.issuer.config import CONFIG_NAME, read_config, render_section

    if (tls_cert is None) != (tls_key is None):
        raise ConfigurationError("give both --tls-cert and --tls-key, or neither")
    config_path = home / CONFIG_NAME
    config = read_config(config_path)
    made = False
    if SECTION not in config:
        values: dict[str, str | int | bool] = {"listen": DEFAULT_LISTEN}
        if tls_cert is not None and tls_key is not None:
            _check_pair(tls_cert, tls_key)
            values["tls_cert"] = str(tls_cert.resolve())
            values["tls_key"] = str(tls_key.resolve())
        with config_path.open("a", encoding="utf-8") as handle:
            handle.write("\n" + render_section(SECTION, values))
        config = read_config(config_path)
    settings = load_api_settings(home, config)
    if not settings.tls_cert.exists() and not settings.tls_key.exists():
        made = True
        fingerprint = make_self_signed_tls(settings.tls_cert, settings.tls_key)
    else:
        _check_pair(settings.tls_cert, settings.tls_key)
        fingerprint = certificate_fingerprint(settings.tls_cert)
    return settings, made, fingerprint
