"""A throwaway local Synapse for side-by-side runs (bench/sync_latency.py), for the
real-client E2EE tests against a reference server (tests/e2ee/against_synapse.py) and for the
federation tests (tests/integration/federation, bench/federation_latency.py).

Synapse (the version pinned in tests/synapse-requirements.txt) is installed from PyPI into
bench/.synapse-venv on first use (or taken from $SYNAPSE_PYTHON), configured on a free
loopback port with rate limits out of the way, and stopped (its directory removed) by the
returned `stop`.

`start_synapse` is a plain-HTTP client-API server with federation off. `FedSynapse` is one
that federates: its federation API (and a second client listener) is served over TLS with a
given certificate, its server name is `127.0.0.1:<TLS port>` (port-qualified, so peers skip
.well-known/SRV and connect straight there), outbound federation to loopback is allowed and
certificates are not verified. `make_cert` makes a CA and a localhost/127.0.0.1 certificate.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / "bench" / ".synapse-venv"
REQUIREMENTS = REPO / "tests" / "synapse-requirements.txt"

_BIG = {"per_second": 100000, "burst_count": 100000}
# Tests and benchmarks hammer the server from one address: no rate limits.
NO_RATE_LIMITS = {
    "rc_message": _BIG, "rc_registration": _BIG, "rc_login": {"address": _BIG, "account": _BIG, "failed_attempts": _BIG},
    "rc_joins": {"local": _BIG, "remote": _BIG}, "rc_invites": {"per_room": _BIG, "per_user": _BIG, "per_issuer": _BIG},
    "rc_key_requests": _BIG, "rc_room_creation": _BIG,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synapse_python() -> Path:
    if os.environ.get("SYNAPSE_PYTHON"):
        return Path(os.environ["SYNAPSE_PYTHON"])
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    # Same marker as scripts/install.sh: reinstall when the pin changes.
    marker = VENV / ".installed"
    if not marker.exists() or REQUIREMENTS.stat().st_mtime > marker.stat().st_mtime \
            or subprocess.run([str(py), "-c", "import synapse"], capture_output=True).returncode != 0:
        print("installing", REQUIREMENTS.name, "into", VENV, flush=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(REQUIREMENTS)], check=True)
        marker.touch()
    return py


def _generate(py: Path, d: Path, server_name: str) -> Path:
    cfg = d / "homeserver.yaml"
    subprocess.run([str(py), "-m", "synapse.app.homeserver", "--server-name", server_name, "--config-path", str(cfg),
                    "--data-directory", str(d), "--generate-config", "--report-stats=no"], check=True, cwd=d, capture_output=True)
    return cfg


def _edit(py: Path, cfg: Path, conf: dict) -> None:
    """Merges `conf` into the generated YAML (a None value removes the key), with Synapse's
    own Python (it has PyYAML)."""
    edit = ("import json, sys, yaml; p = sys.argv[1]; c = yaml.safe_load(open(p)); c.update(json.loads(sys.argv[2])); "
            "c = {k: v for k, v in c.items() if v is not None}; open(p, 'w').write(yaml.safe_dump(c))")
    subprocess.run([str(py), "-c", edit, str(cfg), json.dumps(conf)], check=True)
    # Unbuffered log file, so the access log is complete when a run ends.
    for log_cfg in cfg.parent.glob("*.log.config"):
        log_cfg.write_text(log_cfg.read_text().replace("handlers: [buffer]", "handlers: [file]"))


def _launch(py: Path, cfg: Path) -> subprocess.Popen:
    d = cfg.parent
    out = open(d / "synapse.out", "ab")
    try:
        return subprocess.Popen([str(py), "-m", "synapse.app.homeserver", "--config-path", str(cfg)], cwd=d,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


def _terminate(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(15)
    except ProcessLookupError:
        pass


def _wait_up(proc: subprocess.Popen, url: str, d: Path, timeout: float = 120) -> str | None:
    """None once `url` answers; the log tail if the process died or the deadline passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return None
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return (d / "synapse.out").read_text(errors="replace")[-3000:]
        time.sleep(0.25)


def start_synapse(overrides: dict, prefix: str = "synapse-", keep: bool = False) -> tuple[str, Path, Callable[[], None]]:
    """Starts Synapse; returns (base URL, its directory, stop). `overrides` are merged into
    the generated homeserver.yaml (after the loopback listener and NO_RATE_LIMITS)."""
    py = synapse_python()
    d = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = _generate(py, d, f"localhost:{port}")
    conf = {
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False, "x_forwarded": False,
                       "resources": [{"names": ["client"], "compress": False}]}],
        **NO_RATE_LIMITS,
        "trusted_key_servers": [], "suppress_key_server_warning": True, "federation_domain_whitelist": [],
        **overrides,
    }
    _edit(py, cfg, conf)
    proc = _launch(py, cfg)

    def stop() -> None:
        try:
            _terminate(proc)
        except Exception:
            pass
        if not keep:
            shutil.rmtree(d, ignore_errors=True)

    tail = _wait_up(proc, f"{base}/_matrix/client/versions", d)
    if tail is not None:
        stop()
        raise SystemExit(f"synapse did not start:\n{tail}")
    return base, d, stop


# --------------------------------------------------------------------------- federation


@dataclass
class Cert:
    """A CA (`ca`, the file to trust) and a certificate for DNS:localhost and IP:127.0.0.1
    signed by it (`cert`: leaf then CA, `key`: its private key), all PEM."""
    ca: Path
    cert: Path
    key: Path


_CERT_SCRIPT = r"""
import datetime, ipaddress, sys
from pathlib import Path
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

d = Path(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)
def pem(c): return c.public_bytes(serialization.Encoding.PEM)
ca_key = ec.generate_private_key(ec.SECP256R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Stratus test CA")])
ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
      .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
      .not_valid_after(now + datetime.timedelta(days=7))
      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                   key_encipherment=False, data_encipherment=False, key_agreement=False,
                                   encipher_only=False, decipher_only=False), critical=True)
      .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256()))
(d / "ca.pem").write_bytes(pem(ca))
(d / "cert.pem").write_bytes(pem(leaf) + pem(ca))
(d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
"""


def make_cert(d: Path) -> Cert:
    """Writes ca.pem, cert.pem and key.pem into `d` (with the `cryptography` of Synapse's venv)."""
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(synapse_python()), "-c", _CERT_SCRIPT, str(d)], check=True)
    return Cert(ca=d / "ca.pem", cert=d / "cert.pem", key=d / "key.pem")


class FedSynapse:
    """A Synapse that federates over TLS on loopback.

    - `server_name`: `127.0.0.1:<fed_port>`; `fed_base`: `https://127.0.0.1:<fed_port>`
      (federation, key and client APIs, TLS with `cert`); `base`: plain-HTTP client API.
    - `shared_secret`: for `/_synapse/admin/v1/register`.
    - `stop_process()` / `start_process()` take it down and bring it back on the same ports
      with the same data; `stop()` ends it for good (and removes its directory).
    """

    def __init__(self, cert: Cert, overrides: dict | None = None, prefix: str = "synapse-fed-", keep: bool = False):
        self.py = synapse_python()
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.keep = keep
        self.fed_port, self.client_port = free_port(), free_port()
        self.server_name = f"127.0.0.1:{self.fed_port}"
        self.base = f"http://127.0.0.1:{self.client_port}"
        self.fed_base = f"https://{self.server_name}"
        self.shared_secret = os.urandom(16).hex()
        self.proc: subprocess.Popen | None = None
        self.cfg = _generate(self.py, self.dir, self.server_name)
        res = lambda *names: [{"names": list(names), "compress": False}]  # noqa: E731
        conf = {
            "public_baseurl": self.base + "/",
            "listeners": [
                {"port": self.fed_port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": True, "x_forwarded": False,
                 "resources": res("federation", "client")},
                {"port": self.client_port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False, "x_forwarded": False,
                 "resources": res("client")},
            ],
            "tls_certificate_path": str(cert.cert),
            "tls_private_key_path": str(cert.key),
            **NO_RATE_LIMITS,
            "rc_federation": {"window_size": 1000, "sleep_limit": 100000, "sleep_delay": 0, "reject_limit": 100000,
                              "concurrent": 100000},
            "registration_shared_secret": self.shared_secret,
            "trusted_key_servers": [], "suppress_key_server_warning": True,
            # Loopback is in Synapse's default blocklist, and server names that are IP literals
            # are checked against the blocklist alone (the allowlist is not consulted for them),
            # so the blocklist is emptied as well. Peers' certificates are self-signed.
            "ip_range_blacklist": [],
            "ip_range_whitelist": ["127.0.0.1"],
            "federation_verify_certificates": False,
            "federation_domain_whitelist": None,
            "allow_public_rooms_over_federation": True,
            "allow_public_rooms_without_auth": True,
            # Anyone may publish a room (Synapse's default lets no one), for the directory tests.
            "room_list_publication_rules": [{"action": "allow"}],
            # A peer that was down is retried within seconds, not Synapse's default minutes.
            "federation": {"destination_min_retry_interval": "1s", "destination_retry_multiplier": 1.5,
                           "destination_max_retry_interval": "5s"},
            **(overrides or {}),
        }
        _edit(self.py, self.cfg, conf)

    def start_process(self, timeout: float = 120) -> None:
        self.proc = _launch(self.py, self.cfg)
        tail = _wait_up(self.proc, f"{self.base}/_matrix/client/versions", self.dir, timeout)
        if tail is not None:
            _terminate(self.proc)
            raise RuntimeError(f"synapse {self.server_name} did not start:\n{tail}")

    def stop_process(self) -> None:
        _terminate(self.proc)
        self.proc = None

    def stop(self) -> None:
        try:
            self.stop_process()
        finally:
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        logs = sorted(self.dir.glob("*.log"))
        path = logs[0] if logs else self.dir / "synapse.out"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_fed_synapse(cert: Cert, overrides: dict | None = None, **kw) -> FedSynapse:
    s = FedSynapse(cert, overrides, **kw)
    try:
        s.start_process()
    except BaseException:
        s.stop()
        raise
    return s
