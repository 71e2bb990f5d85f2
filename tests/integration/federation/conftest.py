"""Fixtures of the federation tests: Stratus federating with a real Synapse and with a
second Stratus, on loopback, over TLS.

One certificate per session (`fed_cert`: a CA, and a certificate for DNS:localhost and
IP:127.0.0.1 that it signed) is used by every server and trusted everywhere: the test
process (matrix_helpers' HTTP session), Synapse (which does not verify peers anyway) and the
Workers (wrangler with NODE_EXTRA_CA_CERTS). Every server is named `127.0.0.1:<port>`, the
port its federation API listens on with TLS, so peers connect there directly (no
.well-known, no SRV).

Every server fixture is session-scoped and started on first use: a run that selects only
Stratus↔Stratus tests never starts Synapse, and vice versa. Startup (measured here, 2 cores):
Synapse ≈ 5 s each, a Stratus instance ≈ 5-10 s (D1 migrations + wrangler).

The `hs` fixture maps a label to a server: "stratus", "stratus2", "synapse", "synapse2".
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

import matrix_helpers
from fed_helpers import HS, LABELS, pair_id

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
from synapse_local import Cert, FedSynapse, free_port, make_cert  # noqa: E402

# As the main instance (tests/integration/conftest.py): every test logs in from 127.0.0.1.
# (That conftest can't be imported from here: both are modules named `conftest`.)
# Retries as the Synapses here are configured (1-5 s), so a peer restarted by a test is
# caught up within the tests' deadlines.
STRATUS_VARS = {"LOGIN_FAILURES_IP_MAX": "100000", "FEDERATION_RETRY_MIN_MS": "1000", "FEDERATION_RETRY_MAX_MS": "5000"}

# Synapses started in this session, for their log tails on failures.
_SYNAPSES: list[HS] = []


@pytest.fixture(scope="session")
def fed_cert() -> Cert:
    d = Path(tempfile.mkdtemp(prefix="stratus-fed-cert-"))
    cert = make_cert(d)
    # The Workers serve TLS with this certificate; the test process trusts its CA. requests
    # prefers $REQUESTS_CA_BUNDLE (set on this machine) over a session's `verify`, so the
    # bundle becomes the system one plus this CA for the session.
    bundle = d / "bundle.pem"
    system = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    bundle.write_bytes((Path(system).read_bytes() + b"\n" if system and Path(system).is_file() else b"") + cert.ca.read_bytes())
    saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    previous = matrix_helpers._session.verify
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["CURL_CA_BUNDLE"] = str(bundle)
    matrix_helpers._session.verify = str(bundle)
    try:
        yield cert
    finally:
        matrix_helpers._session.verify = previous
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(d, ignore_errors=True)


def _synapse(cert: Cert, label: str) -> FedSynapse:
    s = FedSynapse(cert, prefix=f"synapse-{label}-", keep=bool(os.environ.get("STRATUS_KEEP_STATE")))
    try:
        s.start_process()
    except Exception as e:
        s.stop()
        pytest.fail(f"{label} did not start: {e}")
    return s


def _synapse_hs(s: FedSynapse, label: str) -> HS:
    key_file = next(s.dir.glob("*.signing.key"))
    h = HS(kind="synapse", label=label, server_name=s.server_name, base=s.base, fed_base=s.fed_base,
           shared_secret=s.shared_secret, signing_key=key_file.read_text().strip(),
           stop_process=s.stop_process, start_process=s.start_process, log_tail=s.log_tail)
    _SYNAPSES.append(h)
    return h


@pytest.fixture(scope="session")
def synapse_fed(fed_cert: Cert) -> HS:
    s = _synapse(fed_cert, "synapse")
    try:
        yield _synapse_hs(s, "synapse")
    finally:
        s.stop()


@pytest.fixture(scope="session")
def synapse_fed2(fed_cert: Cert) -> HS:
    s = _synapse(fed_cert, "synapse2")
    try:
        yield _synapse_hs(s, "synapse2")
    finally:
        s.stop()


def _signing_key(version: str) -> str:
    """A fresh SIGNING_KEY value: the two instances must not share .dev.vars' key."""
    import base64

    return f"ed25519 {version} {base64.b64encode(os.urandom(32)).decode().rstrip('=')}"


def _stratus(stratus_factory, cert: Cert, label: str, host: str = "127.0.0.1") -> HS:
    """A Stratus instance named `host:port` (the certificate covers 127.0.0.1 and localhost)."""
    port = free_port()
    name = f"{host}:{port}"
    key = _signing_key(f"fed_{label}")
    server = stratus_factory(
        {**STRATUS_VARS, "SERVER_NAME": name, "PUBLIC_BASEURL": f"https://{name}", "SIGNING_KEY": key},
        {"NODE_EXTRA_CA_CERTS": str(cert.ca)},
        https={"key": str(cert.key), "cert": str(cert.cert), "ca": str(cert.ca)},
        port=port,
    )
    return HS(kind="stratus", label=label, server_name=name, base=server.base, fed_base=server.base,
              shared_secret=server.shared_secret or "", signing_key=key,
              stop_process=server.stop_process, start_process=server.start_process, log_tail=server.log_tail)


@pytest.fixture(scope="session")
def stratus_fed(stratus_factory, fed_cert: Cert) -> HS:
    return _stratus(stratus_factory, fed_cert, "stratus")


@pytest.fixture(scope="session")
def stratus_fed2(stratus_factory, fed_cert: Cert) -> HS:
    return _stratus(stratus_factory, fed_cert, "stratus2")


_FIXTURE = {"stratus": "stratus_fed", "stratus2": "stratus_fed2", "synapse": "synapse_fed", "synapse2": "synapse_fed2"}
assert set(_FIXTURE) == set(LABELS)


@pytest.fixture
def hs(request):
    """`hs("synapse")` -> that server (started on first use)."""
    return lambda label: request.getfixturevalue(_FIXTURE[label])


# Which (local, remote) pairs a scenario module runs over, by file name:
# test_synapse_*.py: Stratus↔Synapse both ways, plus Synapse→Synapse as the baseline that
# shows the test itself is right; test_stratus_*.py: Stratus↔Stratus both ways.
PAIRS = {
    "test_synapse_": [("stratus", "synapse"), ("synapse", "stratus"), ("synapse", "synapse2")],
    "test_stratus_": [("stratus", "stratus2"), ("stratus2", "stratus")],
}


def pytest_generate_tests(metafunc):
    if "pair" in metafunc.fixturenames:
        name = metafunc.module.__name__.rsplit(".", 1)[-1]
        pairs = next((p for prefix, p in PAIRS.items() if name.startswith(prefix)), None)
        assert pairs is not None, f"{name}: a test with `pair` must live in test_synapse_*.py or test_stratus_*.py"
        metafunc.parametrize("pair", pairs, ids=[pair_id(a, b) for a, b in pairs], indirect=True)


def pytest_collection_modifyitems(config, items):
    # STRATUS_FED_XFAIL=1: the scenarios that involve Stratus are expected to fail (federation
    # not on main yet), so a full `make test` stays green while they still run and report
    # XPASS as features land. Synapse↔Synapse and the smoke tests are unaffected.
    if os.environ.get("STRATUS_FED_XFAIL") != "1":
        return
    for item in items:
        callspec = getattr(item, "callspec", None)
        pair_param = callspec.params.get("pair") if callspec else None
        if pair_param and any(label.startswith("stratus") for label in pair_param):
            item.add_marker(pytest.mark.xfail(reason="Stratus federation not complete yet (STRATUS_FED_XFAIL=1)", strict=False))


@pytest.fixture
def pair(request, hs):
    """(local, remote) servers of this test."""
    a, b = request.param
    return hs(a), hs(b)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # The parent conftest attaches the wrangler logs; this adds Synapse's.
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for h in _SYNAPSES:
            report.sections.append((f"{h.label} ({h.server_name}) log tail", h.log_tail(30)))
