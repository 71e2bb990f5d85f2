"""The OAuth 2.0 / OpenID Connect provider (MSC3861), driven by an independent client
library: authlib's OAuth2Session does discovery-free registration-based login with PKCE
S256, the code exchange, refresh and revocation; authlib's jose verifies the JWTs against
the published JWKS. The HTML login page is driven with plain requests, like a browser
that does not follow the final redirect.
"""

from __future__ import annotations

import html
import os
import re
import secrets
import warnings
from urllib.parse import parse_qs, urlparse

import pytest
import requests

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session, OAuthError
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken

from matrix_helpers import (
    DEFAULT_PASSWORD,
    assert_ok,
    assert_unknown_token,
    call,
    login,
    new_user,
    uia_password,
    whoami,
)

# The test server is plain http on 127.0.0.1; authlib refuses that unless told.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

REGISTERED_REDIRECT = "http://127.0.0.1/callback"
# A native client's loopback redirect URI matches on any port (RFC 8252 section 7.3).
REDIRECT = "http://127.0.0.1:51234/callback"
CLIENT_METADATA = {
    "client_name": "Stratus OAuth test",
    "client_uri": "https://client.example.org/",
    "redirect_uris": [REGISTERED_REDIRECT, "org.example.client.app:/cb"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
    "application_type": "native",
}


def scope_for(device: str, openid: bool = True) -> str:
    s = f"urn:matrix:client:api:* urn:matrix:client:device:{device}"
    return s + " openid" if openid else s


def register_client(base: str, **changes) -> dict:
    body = dict(CLIENT_METADATA, **changes)
    r = requests.post(f"{base}/oauth/register", json=body, timeout=30)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["client_id"]
    return out


def hidden(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert m, f"no hidden field {name} in page:\n{page[:2000]}"
    return html.unescape(m.group(1))


class Flow:
    """One authorisation: an authlib session, the browser, and what came back."""

    def __init__(self, base: str, client_id: str, device: str | None = None, redirect_uri: str = REDIRECT,
                 openid: bool = True, response_mode: str | None = None):
        self.base = base
        self.client_id = client_id
        self.device = device or generate_token(12)
        self.verifier = generate_token(64)
        self.nonce = generate_token(16)
        self.browser = requests.Session()
        self.oauth = OAuth2Session(
            client_id,
            redirect_uri=redirect_uri,
            scope=scope_for(self.device, openid),
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
        )
        extra = {"nonce": self.nonce}
        if response_mode:
            extra["response_mode"] = response_mode
        self.url, self.state = self.oauth.create_authorization_url(
            f"{base}/oauth/authorize", code_verifier=self.verifier, **extra
        )
        assert "code_challenge_method=S256" in self.url

    def login_page(self) -> str:
        r = self.browser.get(self.url, allow_redirects=False, timeout=30)
        assert r.status_code == 200, (r.status_code, r.headers.get("Location"), r.text[:500])
        assert r.headers["Content-Type"].startswith("text/html")
        return r.text

    def sign_in(self, username: str, password: str = DEFAULT_PASSWORD) -> requests.Response:
        page = self.login_page()
        return self.browser.post(
            f"{self.base}/oauth/authorize",
            data={"req": hidden(page, "req"), "username": username, "password": password, "action": "login"},
            allow_redirects=False,
            timeout=30,
        )

    def sign_up(self, page: str, username: str, password: str) -> requests.Response:
        """Posts the registration form of ``page`` (a ``prompt=create`` login page)."""
        return self.browser.post(
            f"{self.base}/oauth/authorize",
            data={"req": hidden(page, "req"), "username": username, "password": password, "password2": password, "action": "register"},
            allow_redirects=False,
            timeout=30,
        )

    def authorize(self, username: str, password: str = DEFAULT_PASSWORD) -> str:
        """Signs in on the HTML page; returns the callback URL (not followed)."""
        r = self.sign_in(username, password)
        assert r.status_code == 303, (r.status_code, r.text[:1000])
        self.callback = r.headers["Location"]
        return self.callback

    def code(self) -> str:
        return parse_qs(urlparse(self.callback).query)["code"][0]

    def exchange(self) -> dict:
        return self.oauth.fetch_token(
            f"{self.base}/oauth/token", authorization_response=self.callback, code_verifier=self.verifier
        )

    def refresh(self, refresh_token: str) -> dict:
        return self.oauth.refresh_token(f"{self.base}/oauth/token", refresh_token=refresh_token)


def signed_in(base: str, client_id: str, prefix: str) -> tuple[dict, "Flow", dict]:
    """A fresh user who authorised `client_id` in a browser: (user, flow, token response)."""
    user = new_user(base, prefix=prefix)
    f = Flow(base, client_id)
    f.authorize(user["username"])
    return user, f, f.exchange()


def raw_token(base: str, **form) -> requests.Response:
    return requests.post(f"{base}/oauth/token", data=form, timeout=30)


def jwks(base: str):
    r = requests.get(f"{base}/.well-known/jwks.json", timeout=30)
    assert r.status_code == 200, r.text
    return JsonWebKey.import_key_set(r.json())


@pytest.fixture(scope="module")
def client(base: str) -> dict:
    return register_client(base)


# --------------------------------------------------------------------------- discovery


def test_discovery_documents(base: str):
    m = assert_ok(call(base, "GET", "/_matrix/client/v1/auth_metadata"))
    for key in ("issuer", "authorization_endpoint", "token_endpoint", "revocation_endpoint", "registration_endpoint"):
        assert m[key].startswith(base), (key, m[key])
    assert m["issuer"] == f"{base}/"
    assert m["code_challenge_methods_supported"] == ["S256"]
    assert set(m["response_modes_supported"]) >= {"query", "fragment"}
    assert set(m["grant_types_supported"]) >= {"authorization_code", "refresh_token"}
    assert "code" in m["response_types_supported"]
    assert m["prompt_values_supported"] == ["create"]  # registration is open on the test server
    assert m["account_management_uri"] == f"{base}/account"
    assert "org.matrix.devices_list" in m["account_management_actions_supported"]

    oidc = requests.get(f"{base}/.well-known/openid-configuration", timeout=30).json()
    assert oidc["issuer"] == m["issuer"]
    assert oidc["id_token_signing_alg_values_supported"] == ["RS256"]
    keys = requests.get(oidc["jwks_uri"], timeout=30).json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["kid"] and k["n"] and k["e"] for k in keys)


# --------------------------------------------------------------------------- registration


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"client_uri": "http://client.example.org/"}, "invalid_client_metadata"),
        ({"redirect_uris": ["http://127.0.0.1:8080/callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://evil.example.com/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://client.example.org/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["example:/callback"]}, "invalid_redirect_uri"),
        ({"application_type": "web"}, "invalid_redirect_uri"),  # web clients need https
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"),
    ],
)
def test_registration_rules(base: str, changes: dict, error: str):
    r = requests.post(f"{base}/oauth/register", json=dict(CLIENT_METADATA, **changes), timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == error, r.text


@pytest.mark.parametrize(
    "changes, error",
    [
        # The reverse-DNS rule alone would accept these: the client URI's single label is
        # the scheme.
        ({"client_uri": "https://javascript/", "redirect_uris": ["javascript:alert(1)"]}, "invalid_client_metadata"),
        ({"client_uri": "https://data/", "redirect_uris": ["data:text/html,<script>alert(1)</script>"]}, "invalid_client_metadata"),
        ({"client_uri": "https://vbscript/", "redirect_uris": ["vbscript:msgbox"]}, "invalid_client_metadata"),
        ({"client_uri": "https://file/", "redirect_uris": ["file:/etc/passwd"]}, "invalid_client_metadata"),
        ({"client_uri": "https://localhost/", "redirect_uris": ["localhost:/cb"]}, "invalid_client_metadata"),
        ({"client_uri": "https://127.0.0.1/", "redirect_uris": [REGISTERED_REDIRECT]}, "invalid_client_metadata"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["blob:https://client.example.org/x"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["about:blank"]}, "invalid_redirect_uri"),
        ({"redirect_uris": [" org.example.client.app:/cb"]}, "invalid_redirect_uri"),
    ],
)
def test_registration_refuses_script_schemes_and_single_label_hosts(base: str, changes: dict, error: str):
    r = requests.post(f"{base}/oauth/register", json=dict(CLIENT_METADATA, **changes), timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == error, r.text


def test_registration_web_client(base: str):
    out = register_client(
        base,
        application_type="web",
        redirect_uris=["https://app.client.example.org/callback"],
        grant_types=["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"],
    )
    assert out["application_type"] == "web"
    assert out["grant_types"] == ["authorization_code", "refresh_token"]  # unknown grant dropped
    # Links off the client's host are dropped, not refused (RFC 7591 lets the server
    # replace metadata); links on it are kept.
    out = register_client(
        base,
        logo_uri="https://cdn.other.net/logo.png",
        tos_uri="https://client.example.org/tos",
        policy_uri="https://legal.client.example.org/policy",
    )
    assert "logo_uri" not in out
    assert out["tos_uri"] == "https://client.example.org/tos"
    assert out["policy_uri"] == "https://legal.client.example.org/policy"


# --------------------------------------------------------------------------- the whole flow


def test_full_flow_with_authlib(base: str, client: dict):
    user = new_user(base, prefix="oauth")
    f = Flow(base, client["client_id"])
    page = f.login_page()
    assert "Stratus OAuth test" in page  # the client's name is shown
    callback = f.authorize(user["username"])
    q = parse_qs(urlparse(callback).query)
    assert callback.startswith(REDIRECT + "?")
    assert q["state"] == [f.state]

    token = f.exchange()
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] > 0
    assert set(token["scope"].split()) == set(scope_for(f.device).split())
    at, rt = token["access_token"], token["refresh_token"]
    assert at.count(".") == 2

    # The access token is an RS256 JWT, verifiable against the JWKS.
    keys = jwks(base)
    claims = jwt.decode(at, keys)
    claims.validate()
    assert claims.header["alg"] == "RS256" and claims.header["kid"]
    assert claims["iss"] == f"{base}/"
    assert claims["sub"] == user["user_id"]
    assert claims["aud"] == base
    assert claims["device_id"] == f.device
    assert claims["jti"] and claims["exp"] > claims["iat"]
    assert "urn:matrix:client:api:*" in claims["scope"]

    # A Matrix API call with the JWT; the device from the scope exists.
    me = assert_ok(whoami(base, at))
    assert me["user_id"] == user["user_id"]
    assert me["device_id"] == f.device
    devices = assert_ok(call(base, "GET", "/_matrix/client/v3/devices", token=at))["devices"]
    assert f.device in [d["device_id"] for d in devices]

    # The ID token: signature, iss, aud, nonce, at_hash.
    id_claims = jwt.decode(
        token["id_token"],
        keys,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": f"{base}/"}},
        claims_params={"nonce": f.nonce, "client_id": client["client_id"], "access_token": at},
    )
    id_claims.validate()
    assert id_claims["sub"] == user["user_id"]
    info = f.oauth.get(f"{base}/oauth/userinfo").json()
    assert info["sub"] == user["user_id"]
    assert info["preferred_username"] == user["username"]

    # Refresh with rotation: new pair, the new access token works.
    t2 = f.refresh(rt)
    at2, rt2 = t2["access_token"], t2["refresh_token"]
    assert rt2 != rt and at2 != at
    assert assert_ok(whoami(base, at2))["device_id"] == f.device

    # Reusing the old refresh token fails and kills the whole family.
    with pytest.raises(OAuthError) as e:
        f.refresh(rt)
    assert e.value.error == "invalid_grant"
    r = raw_token(base, grant_type="refresh_token", refresh_token=rt2, client_id=client["client_id"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert_unknown_token(whoami(base, at2))
    assert_unknown_token(whoami(base, at))


def test_fragment_response_mode(base: str, client: dict):
    user = new_user(base, prefix="oauthfrag")
    f = Flow(base, client["client_id"], response_mode="fragment", openid=False)
    callback = f.authorize(user["username"])
    parsed = urlparse(callback)
    assert parsed.query == "" and parsed.fragment
    frag = parse_qs(parsed.fragment)
    assert frag["state"] == [f.state]
    token = f.oauth.fetch_token(
        f"{base}/oauth/token", code=frag["code"][0], code_verifier=f.verifier
    )
    assert "id_token" not in token  # no openid scope
    assert_ok(whoami(base, token["access_token"]))


def test_code_replay_is_invalid_grant_and_revokes(base: str, client: dict):
    user, f, token = signed_in(base, client["client_id"], "oauthreplay")
    assert_ok(whoami(base, token["access_token"]))
    r = raw_token(
        base,
        grant_type="authorization_code",
        code=f.code(),
        redirect_uri=REDIRECT,
        client_id=client["client_id"],
        code_verifier=f.verifier,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    with pytest.raises(OAuthError) as e:
        f.exchange()
    assert e.value.error == "invalid_grant"
    # RFC 6749 4.1.2: the tokens issued from a replayed code are revoked.
    assert_unknown_token(whoami(base, token["access_token"]))


def test_racing_code_exchanges_have_one_winner(base: str, client: dict):
    from concurrent.futures import ThreadPoolExecutor

    user = new_user(base, prefix="oauthrace")
    f = Flow(base, client["client_id"])
    f.authorize(user["username"])
    form = dict(
        grant_type="authorization_code",
        code=f.code(),
        redirect_uri=REDIRECT,
        client_id=client["client_id"],
        code_verifier=f.verifier,
    )
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: raw_token(base, **form), range(4)))
    assert sorted(r.status_code for r in results).count(200) == 1, [r.text for r in results]
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code != 200)


def test_wrong_pkce_verifier(base: str, client: dict):
    user = new_user(base, prefix="oauthpkce")
    f = Flow(base, client["client_id"])
    f.authorize(user["username"])
    with pytest.raises(OAuthError) as e:
        f.oauth.fetch_token(
            f"{base}/oauth/token", authorization_response=f.callback, code_verifier=generate_token(64)
        )
    assert e.value.error == "invalid_grant"
    # No verifier at all is refused too (fresh code).
    f2 = Flow(base, client["client_id"])
    f2.authorize(user["username"])
    r = raw_token(base, grant_type="authorization_code", code=f2.code(), redirect_uri=REDIRECT, client_id=client["client_id"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


def test_pkce_is_required(base: str, client: dict):
    s = OAuth2Session(client["client_id"], redirect_uri=REDIRECT, scope=scope_for("NOPKCE"))
    url, state = s.create_authorization_url(f"{base}/oauth/authorize")  # no code_challenge
    r = requests.get(url, allow_redirects=False, timeout=30)
    assert r.status_code == 303, r.text
    q = parse_qs(urlparse(r.headers["Location"]).query)
    assert q["error"] == ["invalid_request"] and q["state"] == [state]


def test_unregistered_redirect_uri_is_refused_without_redirect(base: str, client: dict):
    for bad in ["https://evil.example.com/callback", "http://127.0.0.1:51234/other", "http://localhost:51234/callback"]:
        f = Flow(base, client["client_id"], redirect_uri=bad)
        r = f.browser.get(f.url, allow_redirects=False, timeout=30)
        assert r.status_code == 400, (bad, r.status_code, r.headers.get("Location"))
        assert "Location" not in r.headers
        assert "redirect URI" in r.text
    # A mismatched redirect_uri at the token endpoint is invalid_grant.
    user = new_user(base, prefix="oauthredir")
    f = Flow(base, client["client_id"])
    f.authorize(user["username"])
    r = raw_token(
        base,
        grant_type="authorization_code",
        code=f.code(),
        redirect_uri="http://127.0.0.1:9/elsewhere",
        client_id=client["client_id"],
        code_verifier=f.verifier,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


def test_bad_scope_and_unknown_client(base: str, client: dict):
    s = OAuth2Session(client["client_id"], redirect_uri=REDIRECT, scope="urn:matrix:client:api:*", code_challenge_method="S256")
    url, _ = s.create_authorization_url(f"{base}/oauth/authorize", code_verifier=generate_token(64))
    r = requests.get(url, allow_redirects=False, timeout=30)
    assert r.status_code == 303
    assert parse_qs(urlparse(r.headers["Location"]).query)["error"] == ["invalid_scope"]
    r = requests.get(f"{base}/oauth/authorize", params={"client_id": "nope", "redirect_uri": REDIRECT}, timeout=30)
    assert r.status_code == 400 and "not registered" in r.text
    r = raw_token(base, grant_type="refresh_token", refresh_token="x", client_id="nope")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = raw_token(base, grant_type="password", client_id=client["client_id"])
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


def test_wrong_password_and_csrf(base: str, client: dict):
    user = new_user(base, prefix="oauthpw")
    f = Flow(base, client["client_id"])
    r = f.sign_in(user["username"], "wrong password")
    assert r.status_code == 401 and "Invalid username or password" in r.text
    assert "Location" not in r.headers
    # The form posted without the browser's CSRF cookie (another site) is refused.
    page = f.login_page()
    r = requests.post(
        f"{base}/oauth/authorize",
        data={"req": hidden(page, "req"), "username": user["username"], "password": DEFAULT_PASSWORD, "action": "login"},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 403 and "Location" not in r.headers
    # A tampered request is refused.
    r = f.browser.post(
        f"{base}/oauth/authorize",
        data={"req": hidden(page, "req") + "x", "username": user["username"], "password": DEFAULT_PASSWORD, "action": "login"},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code in (400, 403) and "Location" not in r.headers


def test_signed_in_browser_continues_and_cancel(base: str, client: dict):
    user = new_user(base, prefix="oauthsso")
    f = Flow(base, client["client_id"])
    f.authorize(user["username"])
    # Same browser, new authorisation: "continue as" without the password.
    g = Flow(base, client["client_id"])
    g.browser = f.browser
    page = g.login_page()
    assert user["user_id"] in page and 'value="consent"' in page
    r = g.browser.post(f"{base}/oauth/authorize", data={"req": hidden(page, "req"), "action": "consent"}, allow_redirects=False, timeout=30)
    assert r.status_code == 303
    g.callback = r.headers["Location"]
    assert assert_ok(whoami(base, g.exchange()["access_token"]))["user_id"] == user["user_id"]
    # prompt=login asks for the password again.
    p = Flow(base, client["client_id"])
    p.browser = f.browser
    p.url += "&prompt=login"
    page = p.login_page()
    assert 'name="password"' in page and 'value="consent"' not in page
    # Cancel: access_denied with the state.
    h = Flow(base, client["client_id"])
    page = h.login_page()
    r = h.browser.post(f"{base}/oauth/authorize", data={"req": hidden(page, "req"), "action": "cancel"}, allow_redirects=False, timeout=30)
    q = parse_qs(urlparse(r.headers["Location"]).query)
    assert q["error"] == ["access_denied"] and q["state"] == [h.state]


def test_prompt_create_registers(base: str, client: dict):
    f = Flow(base, client["client_id"])
    f.url += "&prompt=create"
    page = f.login_page()
    assert 'value="register"' in page and "password2" in page
    username = f"oauthnew-{secrets.token_hex(6)}"
    r = f.sign_up(page, username, "pw-" + username)
    assert r.status_code == 303, r.text[:800]
    f.callback = r.headers["Location"]
    me = assert_ok(whoami(base, f.exchange()["access_token"]))
    assert me["user_id"].startswith(f"@{username}:")
    # The new account also works with password login (legacy API on).
    assert login(base, username, "pw-" + username)["user_id"] == me["user_id"]


# --------------------------------------------------------------------------- revocation


def test_revoke_access_token_kills_session(base: str, client: dict):
    user, f, token = signed_in(base, client["client_id"], "oauthrevoke")
    assert_ok(whoami(base, token["access_token"]))
    r = f.oauth.revoke_token(f"{base}/oauth/revoke", token=token["access_token"], token_type_hint="access_token")
    assert r.status_code == 200, r.text
    assert_unknown_token(whoami(base, token["access_token"]))
    with pytest.raises(OAuthError) as e:
        f.refresh(token["refresh_token"])
    assert e.value.error == "invalid_grant"
    # Revoking again, or an unknown token, is still 200 (RFC 7009 2.2).
    assert f.oauth.revoke_token(f"{base}/oauth/revoke", token=token["access_token"]).status_code == 200
    assert f.oauth.revoke_token(f"{base}/oauth/revoke", token="garbage").status_code == 200


def test_revoke_refresh_token(base: str, client: dict):
    user, f, token = signed_in(base, client["client_id"], "oauthrevrt")
    r = f.oauth.revoke_token(f"{base}/oauth/revoke", token=token["refresh_token"], token_type_hint="refresh_token")
    assert r.status_code == 200
    assert_unknown_token(whoami(base, token["access_token"]))


def test_device_deletion_kills_jwt(base: str, client: dict):
    user, f, token = signed_in(base, client["client_id"], "oauthdev")
    assert_ok(whoami(base, token["access_token"]))
    # Another (legacy) session deletes the OAuth device.
    r = uia_password(
        base, "DELETE", f"/_matrix/client/v3/devices/{f.device}", {}, user["access_token"], user["user_id"], DEFAULT_PASSWORD
    )
    assert_ok(r)
    assert_unknown_token(whoami(base, token["access_token"]))
    r = raw_token(base, grant_type="refresh_token", refresh_token=token["refresh_token"], client_id=client["client_id"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_logout_with_jwt(base: str, client: dict):
    user, f, token = signed_in(base, client["client_id"], "oauthlogout")
    at = token["access_token"]
    assert_ok(call(base, "POST", "/_matrix/client/v3/logout", {}, token=at))
    assert_unknown_token(whoami(base, at))


def test_reused_device_id_replaces_old_session(base: str, client: dict):
    user = new_user(base, prefix="oauthsame")
    f = Flow(base, client["client_id"], device="SAMEDEVICE1")
    f.authorize(user["username"])
    first = f.exchange()
    g = Flow(base, client["client_id"], device="SAMEDEVICE1")
    g.authorize(user["username"])
    second = g.exchange()
    assert_ok(whoami(base, second["access_token"]))
    assert_unknown_token(whoami(base, first["access_token"]))
    ids = [d["device_id"] for d in assert_ok(call(base, "GET", "/_matrix/client/v3/devices", token=second["access_token"]))["devices"]]
    assert ids.count("SAMEDEVICE1") == 1


def test_forged_and_foreign_jwts_are_refused(base: str, client: dict):
    user, f, token = signed_in(base, client["client_id"], "oauthforge")
    at = token["access_token"]
    head, payload, sig = at.split(".")
    assert_unknown_token(whoami(base, f"{head}.{payload}.{sig[:-4]}AAAA"))
    # Signed by a key the server does not know.
    from authlib.jose import JsonWebKey as K

    other = K.generate_key("RSA", 2048, is_private=True)
    claims = jwt.decode(at, jwks(base))
    forged = jwt.encode({"alg": "RS256", "kid": claims.header["kid"], "typ": "at+jwt"}, dict(claims), other).decode()
    assert_unknown_token(whoami(base, forged))
    # The ID token is not an access token.
    g = Flow(base, client["client_id"])
    g.authorize(user["username"])
    assert_unknown_token(whoami(base, g.exchange()["id_token"]))


# --------------------------------------------------------------------------- account management


def test_account_management_pages(base: str, client: dict):
    user, f, token = signed_in(base, client["client_id"], "oauthacct")
    at = token["access_token"]
    b = f.browser  # signed in by the authorisation

    r = b.get(f"{base}/account", params={"action": "org.matrix.profile"}, timeout=30)
    assert r.status_code == 200 and user["user_id"] in r.text
    csrf = hidden(r.text, "csrf")
    r = b.post(f"{base}/account", data={"action": "org.matrix.profile", "csrf": csrf, "displayname": "Renamed <b>"}, timeout=30)
    assert r.status_code == 200 and "Renamed &lt;b&gt;" in r.text
    prof = assert_ok(call(base, "GET", f"/_matrix/client/v3/profile/{user['user_id']}/displayname", token=at))
    assert prof["displayname"] == "Renamed <b>"

    r = b.get(f"{base}/account", params={"action": "org.matrix.devices_list"}, timeout=30)
    assert r.status_code == 200 and f.device in r.text
    r = b.get(f"{base}/account", params={"action": "org.matrix.session_end", "device_id": f.device}, timeout=30)
    assert r.status_code == 200 and "Sign out this session" in r.text
    # Without the CSRF token nothing happens.
    r = b.post(f"{base}/account", data={"action": "org.matrix.device_delete", "device_id": f.device}, timeout=30)
    assert r.status_code == 403
    assert_ok(whoami(base, at))
    r = b.post(f"{base}/account", data={"action": "org.matrix.device_delete", "device_id": f.device, "csrf": csrf}, timeout=30)
    assert r.status_code == 200 and "signed out" in r.text
    assert_unknown_token(whoami(base, at))

    # A browser that is not signed in gets the login form, then the page.
    fresh = requests.Session()
    r = fresh.get(f"{base}/account", params={"action": "org.matrix.devices_list"}, timeout=30)
    assert r.status_code == 200 and 'name="password"' in r.text
    r = fresh.post(
        f"{base}/account",
        data={"action": "login", "csrf": hidden(r.text, "csrf"), "next": hidden(r.text, "next"), "username": user["username"], "password": DEFAULT_PASSWORD},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 303 and "devices_list" in r.headers["Location"]
    r = fresh.get(base + r.headers["Location"], timeout=30)
    assert r.status_code == 200 and "Sessions" in r.text


# --------------------------------------------------------------------------- OAuth-only mode


def test_oauth_only_mode(stratus_factory):
    srv = stratus_factory({"AUTH_MODE": "oauth", "LOGIN_FAILURES_IP_MAX": "100000"})
    b = srv.base
    assert assert_ok(call(b, "GET", "/_matrix/client/v3/login"))["flows"] == []
    r = call(b, "POST", "/_matrix/client/v3/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "x"}, "password": "y"})
    assert r.status_code == 404 and r.json()["errcode"] == "M_UNRECOGNIZED"
    r = call(b, "POST", "/_matrix/client/v3/register", {"username": "x", "password": "y"})
    assert r.status_code == 404 and r.json()["errcode"] == "M_UNRECOGNIZED"
    # Accounts come from the OAuth registration page instead.
    c = register_client(b)
    f = Flow(b, c["client_id"])
    f.url += "&prompt=create"
    page = f.login_page()
    username = f"only-{secrets.token_hex(6)}"
    r = f.sign_up(page, username, "pw-" + username)
    assert r.status_code == 303, r.text[:500]
    f.callback = r.headers["Location"]
    assert assert_ok(whoami(b, f.exchange()["access_token"]))["user_id"].startswith(f"@{username}:")


# --------------------------------------------------------------------------- key rotation


def test_key_rotation_publishes_old_key(base: str, stratus_factory):
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from dev_vars import read_dev_vars

    old_kids = [k["kid"] for k in requests.get(f"{base}/.well-known/jwks.json", timeout=30).json()["keys"]]
    new_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    srv = stratus_factory(
        {
            "OAUTH_SIGNING_KEY": base64.b64encode(new_pem).decode(),
            "OAUTH_PREVIOUS_SIGNING_KEYS": read_dev_vars()["OAUTH_SIGNING_KEY"],
            "LOGIN_FAILURES_IP_MAX": "100000",
        }
    )
    keys = requests.get(f"{srv.base}/.well-known/jwks.json", timeout=30).json()["keys"]
    kids = [k["kid"] for k in keys]
    assert len(kids) == 2 and kids[1] == old_kids[0] and kids[0] != old_kids[0], kids
    # New tokens are signed with the new key.
    c = register_client(srv.base)
    user = new_user(srv.base, prefix="rot")
    f = Flow(srv.base, c["client_id"])
    f.authorize(user["username"])
    at = f.exchange()["access_token"]
    assert jwt.decode(at, JsonWebKey.import_key_set({"keys": keys})).header["kid"] == kids[0]
    assert_ok(whoami(srv.base, at))


# --------------------------------------------------------------------------- expiry, closed registration


def test_expired_jwt_is_soft_logout_then_refresh(stratus_factory):
    import time

    srv = stratus_factory({"ACCESS_TOKEN_LIFETIME_SECS": "2"})  # shared with test_refresh.py
    c = register_client(srv.base)
    user = new_user(srv.base, prefix="oauthexp")
    f = Flow(srv.base, c["client_id"])
    f.authorize(user["username"])
    token = f.exchange()
    assert token["expires_in"] == 2
    assert_ok(whoami(srv.base, token["access_token"]))
    time.sleep(3.2)
    assert_unknown_token(whoami(srv.base, token["access_token"]), soft_logout=True)
    fresh = f.refresh(token["refresh_token"])
    assert_ok(whoami(srv.base, fresh["access_token"]))


def test_closed_registration_has_no_prompt_create(stratus_factory):
    srv = stratus_factory({"REGISTRATION_MODE": "closed"})  # shared with test_register.py
    m = assert_ok(call(srv.base, "GET", "/_matrix/client/v1/auth_metadata"))
    assert "prompt_values_supported" not in m
    c = register_client(srv.base)
    f = Flow(srv.base, c["client_id"])
    f.url += "&prompt=create"
    page = f.login_page()
    assert 'value="register"' not in page and 'value="login"' in page
    r = f.sign_up(page, "sneaky", "pw")
    assert r.status_code == 403 and "Location" not in r.headers
    assert requests.get(f"{srv.base}/_matrix/client/v3/profile/@sneaky:{srv.server_name}", timeout=30).status_code == 404
