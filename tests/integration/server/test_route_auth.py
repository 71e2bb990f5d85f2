"""The router authenticates before any handler runs: every endpoint that `src/routes.rs`
declares `[User]` or `[Admin]` answers 401 `M_MISSING_TOKEN` without a token and 401
`M_UNKNOWN_TOKEN` with a wrong one, whatever its parameters and body; `[Admin]` endpoints
answer 403 to a user who is not an admin; `[Server]` (federation) endpoints answer 401
`M_UNAUTHORIZED` without an `X-Matrix` authorization or with a malformed one. The rows are read from the route table itself,
so a new endpoint is covered the day it is declared."""

import re
from pathlib import Path

import pytest

from matrix_helpers import assert_error, call

ROUTES = Path(__file__).resolve().parents[3] / "src" / "routes.rs"
ROW = re.compile(r'^\s*(Get|Put|Post|Delete) "([^"]+)" \[(\w+)(?:, [\w, ]+)?\] =>', re.M)


def rows(kinds):
    for method, path, auth in ROW.findall(ROUTES.read_text()):
        if auth in kinds:
            # Any value will do for the parameters: authentication comes first.
            yield method.upper(), re.sub(r"\{[^}]+\}", "x", path)


AUTHED = sorted(set(rows({"User", "Admin"})))


def test_the_table_was_read():
    assert len(AUTHED) > 100, AUTHED


@pytest.mark.parametrize("method,path", AUTHED)
def test_authenticated_routes_refuse_missing_and_unknown_tokens(base, method, path):
    r = call(base, method, path, data="{}")
    assert_error(r, 401, "M_MISSING_TOKEN")
    r = call(base, method, path, data="{}", token="not-a-token")
    assert_error(r, 401, "M_UNKNOWN_TOKEN")


@pytest.mark.parametrize("method,path", sorted(set(rows({"Admin"}))))
def test_admin_routes_refuse_non_admins(base, user, method, path):
    assert_error(call(base, method, path, data="{}", token=user["access_token"]), 403, "M_FORBIDDEN")


SERVER = sorted(set(rows({"Server"})))


@pytest.mark.parametrize("method,path", SERVER)
def test_server_routes_refuse_requests_without_x_matrix(base, method, path):
    assert_error(call(base, method, path, data="{}"), 401, "M_UNAUTHORIZED")
    r = call(base, method, path, data="{}", headers={"Authorization": "X-Matrix origin=a.example"})
    assert_error(r, 401, "M_UNAUTHORIZED")
    r = call(base, method, path, data="{}", token="a-client-token")
    assert_error(r, 401, "M_UNAUTHORIZED")
