"""The user system's client of the issuer's HTTPS API (docs/api.md): sign-in, challenges,
activation, issuer commands. TLS is verified against the system's CAs, or against the issuer's
own certificate when the user was given it (`issuer_cert`, a self-signed one pinned).

The password and the session token are only ever in request bodies and headers; the client
never logs them and its errors never contain them.
"""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path
from typing import Any

import httpx

from sealcard.errors import ConfigurationError, SealcardError, UnavailableError

DEFAULT_TIMEOUT_S = 60.0


class IssuerApiError(SealcardError):
    """The issuer refused (its `code` and message), or could not be reached (`code`
    "unreachable": `IssuerUnreachableError`)."""

    def __init__(self, message: str, code: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class IssuerUnreachableError(IssuerApiError, UnavailableError):
    """No answer from the issuer, or its answer that it cannot serve now (HTTP 503): trying
    again later may work (the CLI exits 3)."""


class IssuerUntrustedError(IssuerApiError, ConfigurationError):
    """The issuer's TLS certificate is not trusted: the user names it (the CLI exits 2)."""


def _tls(issuer_cert: Path | None) -> ssl.SSLContext | bool:
    if issuer_cert is None:
        return True
    try:
        context = ssl.create_default_context(cafile=str(issuer_cert))
    except ssl.SSLError:  # the library's reason names its internals ("_ssl.c:4154")
        raise ConfigurationError(
            f"cannot use {issuer_cert} as the issuer's certificate: it holds no PEM "
            "certificate; give the certificate (PEM) your bank gave you"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot use {issuer_cert} as the issuer's certificate: {exc.strerror}"
        ) from None
    return context


class IssuerApiClient:
    """One signed-in session with the issuer (`sign_in` first)."""

    def __init__(
        self,
        base_url: str,
        *,
        issuer_cert: Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith("https://") and transport is None:
            raise ConfigurationError(f"the issuer URL must be https://, not {base_url!r}")
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            verify=_tls(issuer_cert),
            timeout=timeout_s,
            transport=transport,
            follow_redirects=False,
        )
        self._token: str | None = None

    def __enter__(self) -> IssuerApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._token is not None:
            with contextlib.suppress(httpx.HTTPError):  # else it expires on its own
                self._http.delete("/v1/session", headers=self._auth())
            self._token = None
        self._http.close()

    def _auth(self) -> dict[str, str]:
        return {} if self._token is None else {"Authorization": f"Bearer {self._token}"}

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            answer = self._http.request(method, path, json=body, headers=self._auth())
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise IssuerUntrustedError(
                    f"the TLS certificate of {self._http.base_url} is not trusted: if your bank"
                    " gave you its certificate, pass it with --issuer-cert FILE",
                    "untrusted",
                ) from None
            raise IssuerUnreachableError(
                f"cannot reach the issuer at {self._http.base_url}: {exc}", "unreachable"
            ) from None
        except httpx.HTTPError as exc:
            raise IssuerUnreachableError(
                f"the issuer did not answer ({type(exc).__name__})", "unreachable"
            ) from None
        try:
            payload = answer.json()
        except ValueError:
            raise IssuerApiError(
                f"the issuer answered HTTP {answer.status_code} without JSON", "bad_answer",
                answer.status_code,
            ) from None  # fmt: skip
        if answer.status_code >= 400:
            message = str(payload.get("message", "refused")) if isinstance(payload, dict) else ""
            code = str(payload.get("error", "refused")) if isinstance(payload, dict) else "refused"
            if answer.status_code == 503:
                raise IssuerUnreachableError(
                    f"the issuer cannot serve this now: {message}", code, answer.status_code
                )
            raise IssuerApiError(f"the issuer refused: {message}", code, answer.status_code)
        return payload

    def sign_in(self, login: str, password: str) -> str:
        """Start a session; returns the account's role."""
        reply = self._call("POST", "/v1/session", {"login": login, "password": password})
        self._token = str(reply["token"])
        return str(reply["role"])

    def challenge(self, purpose: str) -> tuple[str, bytes]:
        import base64

        reply = self._call("POST", "/v1/challenges", {"purpose": purpose})
        return str(reply["challenge_id"]), base64.b64decode(reply["challenge"])

    def activate(self, challenge_id: str, card: dict[str, Any], signature: bytes) -> dict[str, Any]:
        import base64

        body = {
            "challenge_id": challenge_id,
            "card": card,
            "signature": base64.b64encode(signature).decode("ascii"),
        }
        reply: dict[str, Any] = self._call("POST", "/v1/activation", body)
        return reply

    def report_activation(self, order_id: int, personalized: bool, reason: str = "") -> None:
        self._call(
            "POST", f"/v1/activation/{order_id}/result",
            {"personalized": personalized, "reason": reason[:200]},
        )  # fmt: skip

    def card_command(self, body: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = self._call("POST", "/v1/card-commands", body)
        return reply

    def report_card_command(self, serial: bytes, command: str, done: bool, reason: str) -> None:
        self._call(
            "POST", "/v1/card-commands/result",
            {"serial": serial.hex(), "command": command, "done": done, "reason": reason[:200]},
        )  # fmt: skip

    def report_lost(self, order_id: int, note: str = "") -> dict[str, Any]:
        reply: dict[str, Any] = self._call("POST", f"/v1/orders/{order_id}/lost", {"note": note})
        return reply

    def me(self) -> dict[str, Any]:
        reply: dict[str, Any] = self._call("GET", "/v1/me")
        return reply
