"""The API's accounts: sign-in and its refusals (wrong credentials, rate limit per login and
per address), sessions that expire and end, roles enforced on the server, malformed bodies,
bulk intake by API, and no secret in a URL or the log."""

from __future__ import annotations

import logging

import pytest
from apiworld import ApiWorld


def test_sign_in_and_me(api: ApiWorld) -> None:
    login, password, _user_id = api.customers[0]
    answer = api.client.post("/v1/session", json={"login": login, "password": password})
    assert answer.status_code == 200
    body = answer.json()
    assert body["role"] == "customer" and len(body["token"]) >= 40
    assert answer.headers["cache-control"] == "no-store"
    me = api.client.get("/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200 and me.json()["login"] == login and me.json()["orders"] == []


@pytest.mark.parametrize(
    "who", ["unknown-login", "C1-wrong-password"], ids=["unknown", "wrong password"]
)
def test_wrong_credentials_one_answer(api: ApiWorld, who: str) -> None:
    login = "nobody" if who == "unknown-login" else api.customers[0][0]
    answer = api.client.post("/v1/session", json={"login": login, "password": "not it"})
    assert answer.status_code == 401
    assert answer.json() == {
        "ok": False,
        "error": "wrong_credentials",
        "message": "wrong login or password",
    }


def test_rate_limit_per_login(api: ApiWorld) -> None:
    login, password, _ = api.customers[0]
    for _ in range(3):  # the fixture's policy: 3 failures per login per window
        assert (
            api.client.post("/v1/session", json={"login": login, "password": "x"}).status_code
            == 401
        )
    limited = api.client.post("/v1/session", json={"login": login, "password": password})
    assert limited.status_code == 429  # even the right password waits
    assert limited.json()["error"] == "rate_limited"
    assert 0 < int(limited.headers["retry-after"]) <= 15 * 60
    other = api.customers[1]
    assert (
        api.client.post("/v1/session", json={"login": other[0], "password": other[1]}).status_code
        == 200
    )
    api.clock.advance(minutes=16)
    assert (
        api.client.post("/v1/session", json={"login": login, "password": password}).status_code
        == 200
    )


def test_rate_limit_per_address(api: ApiWorld) -> None:
    for i in range(10):  # 10 failures from this address, spread over many logins
        api.client.post("/v1/session", json={"login": f"guess{i}", "password": "x"})
    login, password, _ = api.customers[1]
    answer = api.client.post("/v1/session", json={"login": login, "password": password})
    assert answer.status_code == 429 and answer.json()["error"] == "rate_limited"


def test_sessions_expire_and_end(api: ApiWorld) -> None:
    headers = api.login(*api.customers[0][:2])
    assert api.client.get("/v1/me", headers=headers).status_code == 200
    api.clock.advance(minutes=31)
    expired = api.client.get("/v1/me", headers=headers)
    assert expired.status_code == 401 and expired.json()["error"] == "not_signed_in"
    headers = api.login(*api.customers[0][:2])
    assert api.client.delete("/v1/session", headers=headers).status_code == 200
    assert api.client.get("/v1/me", headers=headers).status_code == 401
    for bad in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic abc"}):
        assert api.client.get("/v1/me", headers=bad).status_code == 401


def test_roles_are_enforced_by_the_server(api: ApiWorld) -> None:
    customer = api.login(*api.customers[0][:2])
    auditor = api.login(*api.auditor)
    operator = api.login(*api.operator)
    csv = "customer_ref,name,address\nC9,Cy,9 Main St\n"
    for headers in (customer, auditor):
        answer = api.client.post(
            "/v1/customers/import", content=csv, headers={**headers, "Content-Type": "text/csv"}
        )
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    assert api.client.get("/v1/orders", headers=customer).status_code == 403
    assert api.client.get("/v1/orders", headers=auditor).status_code == 200
    assert api.client.get("/v1/audit", headers=customer).status_code == 403
    assert api.client.post("/v1/orders/1/cancel", json={}, headers=auditor).status_code == 403
    made = api.client.post(
        "/v1/customers/import", content=csv, headers={**operator, "Content-Type": "text/csv"}
    )
    assert made.status_code == 200
    (credential,) = made.json()["credentials"]
    assert credential["login"] == "C9"
    assert (
        api.client.post(
            "/v1/session", json={"login": "C9", "password": credential["password"]}
        ).status_code
        == 200
    )
    entries = api.client.get("/v1/audit", headers=auditor).json()["entries"]
    intake = [e for e in entries if e["action"] == "intake.customers"]
    assert intake[0]["actor"] == "operator:olivia"  # staff actions under their name


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/session", {"login": "x"}),
        ("/v1/session", {"login": "x", "password": "y", "extra": 1}),
        ("/v1/session", {"login": "", "password": "y"}),
        ("/v1/session", "not json"),
        ("/v1/challenges", {"purpose": "bake"}),
        ("/v1/activation", {"challenge_id": "x", "card": {}, "signature": "!!"}),
    ],
)
def test_malformed_bodies(api: ApiWorld, path: str, body: object) -> None:
    headers = api.login(*api.customers[0][:2])
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    answer = api.client.post(path, headers=headers, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 400, answer.text
    assert answer.json()["ok"] is False and answer.json()["error"] == "malformed"


def test_bad_intake_files_by_api(api: ApiWorld) -> None:
    operator = {**api.login(*api.operator), "Content-Type": "text/csv"}
    answer = api.client.post(
        "/v1/customers/import", content="customer_ref,name\n", headers=operator
    )
    assert answer.status_code == 400 and "the header is" in answer.json()["message"]
    answer = api.client.post(
        "/v1/orders/import",
        content="customer_ref,channel,pin_source\nNOPE,bureau,none\n",
        headers=operator,
    )
    assert answer.status_code == 404 and "NOPE" in answer.json()["message"]
    answer = api.client.post(
        "/v1/orders/import",
        content="customer_ref,channel,pin_source\nC1,activation,none\n",
        headers=operator,
    )
    assert answer.status_code == 200 and answer.json()["orders"] == 1
    answer = api.client.post("/v1/orders/import", content=b"\xff\xfe", headers=operator)
    assert answer.status_code == 400


def test_body_size_and_unknown_paths(api: ApiWorld) -> None:
    big = {"login": "x", "password": "y" * 100_000}
    assert api.client.post("/v1/session", json=big).status_code == 413
    assert api.client.get("/v1/nothing").json()["error"] == "not_found"
    assert api.client.get("/openapi.json").json()["info"]["title"] == "sealcard issuer API"
    assert api.client.get("/docs").status_code == 404  # no CDN-loaded pages


def test_no_secret_in_the_log(api: ApiWorld, caplog: pytest.LogCaptureFixture) -> None:
    login, password, _ = api.customers[0]
    with caplog.at_level(logging.DEBUG):
        token = api.client.post("/v1/session", json={"login": login, "password": password}).json()[
            "token"
        ]
        api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        api.client.post("/v1/session", json={"login": login, "password": "wrong"})
    assert password not in caplog.text and token not in caplog.text


def test_password_change(api: ApiWorld) -> None:
    login, password, _ = api.customers[0]
    headers = api.login(login, password)
    short = api.client.post(
        "/v1/me/password", json={"old_password": password, "new_password": "short"},
        headers=headers,
    )  # fmt: skip
    assert short.status_code == 400
    wrong = api.client.post(
        "/v1/me/password", json={"old_password": "nope", "new_password": "a new long password"},
        headers=headers,
    )  # fmt: skip
    assert wrong.status_code == 401
    ok = api.client.post(
        "/v1/me/password", json={"old_password": password, "new_password": "a new long password"},
        headers=headers,
    )  # fmt: skip
    assert ok.status_code == 200
    assert api.client.get("/v1/me", headers=headers).status_code == 401  # sessions ended
    api.login(login, "a new long password")


def test_concurrent_requests_keep_their_own_connections(api: ApiWorld) -> None:
    """Many clients at once: each request's database work stays on its own worker thread's
    connection (a dependency and its endpoint may run on different threads)."""
    from concurrent.futures import ThreadPoolExecutor

    headers = [api.login(*c[:2]) for c in api.customers]

    def work(i: int) -> list[int]:
        codes = []
        for _ in range(15):
            codes.append(api.client.get("/v1/me", headers=headers[i % 2]).status_code)
            made = api.client.post(
                "/v1/challenges", json={"purpose": "activation"}, headers=headers[i % 2]
            )
            codes.append(made.status_code)
        return codes

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = [code for codes in pool.map(work, range(6)) for code in codes]
    assert results == [200] * len(results)
