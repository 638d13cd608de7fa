"""A small client for Jarvis's HTTP API: `GET /health`, `POST /v1/command`, `POST /v1/event`.

Every failure becomes one of the exceptions below, so callers branch on the kind of failure
(unreachable, key refused, rate limited, bad input, store unavailable) and never on status
codes. The API key only ever travels in the `x-api-key` header; it is never logged.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from time import monotonic
from typing import Any

import aiohttp

from .const import COMMAND_TIMEOUT, EVENT_TIMEOUT, HEALTH_TIMEOUT


class JarvisError(Exception):
    """Any failure to get an answer from Jarvis."""


class JarvisConnectionError(JarvisError):
    """Jarvis cannot be reached, or did not answer like Jarvis."""


class JarvisAuthError(JarvisError):
    """Jarvis refused the API key (401)."""


class JarvisRateLimitedError(JarvisError):
    """Too many requests from this host (429); `retry_after` in seconds."""

    def __init__(self, message: str, retry_after: int | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JarvisRequestError(JarvisError):
    """Jarvis refused the request itself (400, 413, 422); the message is Jarvis's."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class _StaleConnection(Exception):
    """Writing the request failed with EPIPE: Jarvis had closed the connection, so it never
    read the request."""


class JarvisUnavailableError(JarvisError):
    """Jarvis is up but cannot do this now (503), e.g. its event memory is unusable."""


@dataclass(slots=True)
class Timed:
    """An answer and how long it took, in milliseconds."""

    body: dict[str, Any]
    latency_ms: float


class JarvisClient:
    """Talks to one Jarvis at `http://host:port`."""

    def __init__(
        self, session: aiohttp.ClientSession, host: str, port: int, api_key: str
    ) -> None:
        self._session = session
        # An IPv6 address needs brackets in a URL.
        shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
        self.base_url = f"http://{shown}:{port}"
        self._api_key = api_key

    async def health(self) -> dict[str, Any]:
        """`GET /health` (no key needed).

        Raises JarvisConnectionError when Jarvis cannot be reached or the answer is not
        Jarvis's health document.
        """
        body = (await self._request("GET", "/health", None, HEALTH_TIMEOUT)).body
        if body.get("status") != "ok" or "version" not in body:
            raise JarvisConnectionError("the answer from /health is not Jarvis's")
        return body

    async def check_key(self) -> None:
        """Proves the key without doing anything: an empty command passes the key check and
        is then refused as empty (400 `empty-text`); a wrong key gets 401 first.

        Raises JarvisAuthError for a refused key, JarvisRateLimitedError, or
        JarvisConnectionError.
        """
        try:
            await self._request(
                "POST", "/v1/command", {"text": ""}, HEALTH_TIMEOUT, keyed=True
            )
        except JarvisRequestError as err:
            if err.code == "empty-text":
                return
            raise JarvisConnectionError(
                f"unexpected answer to the key check: {err}"
            ) from err
        # 200 to an empty command: not the Jarvis this integration knows.
        raise JarvisConnectionError("the key check was not refused as empty")

    async def command(self, text: str, conversation_id: str | None) -> Timed:
        """`POST /v1/command`: Jarvis's reply and the round trip."""
        body: dict[str, Any] = {"text": text}
        if conversation_id:
            body["conversation_id"] = conversation_id
        return await self._request(
            "POST", "/v1/command", body, COMMAND_TIMEOUT, keyed=True
        )

    async def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/event`: `{"key": ..., "stored": ...}`."""
        return (
            await self._request("POST", "/v1/event", event, EVENT_TIMEOUT, keyed=True)
        ).body

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        timeout: float,
        *,
        keyed: bool = False,
    ) -> Timed:
        try:
            return await self._request_once(method, path, body, timeout, keyed)
        except _StaleConnection:
            # The pooled connection was closed by Jarvis (a restart) and the request never
            # reached it: sending it again on a new connection cannot run anything twice.
            try:
                return await self._request_once(method, path, body, timeout, keyed)
            except _StaleConnection as err:
                raise JarvisConnectionError(str(err)) from err

    async def _request_once(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        timeout: float,
        keyed: bool,
    ) -> Timed:
        headers = {"x-api-key": self._api_key} if keyed and self._api_key else {}
        started = monotonic()
        try:
            async with self._session.request(
                method,
                f"{self.base_url}{path}",
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    # An unknown route (an older Jarvis) answers 404 with no body.
                    answer = None
                latency_ms = (monotonic() - started) * 1000
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as err:
            raise JarvisConnectionError(
                f"no answer from {path} in {timeout:g} s"
            ) from err
        except aiohttp.ClientOSError as err:
            if err.errno == errno.EPIPE:
                raise _StaleConnection(str(err)) from err
            raise JarvisConnectionError(str(err)) from err
        except aiohttp.ClientError as err:
            raise JarvisConnectionError(str(err) or type(err).__name__) from err
        if status == 404:
            raise JarvisRequestError(
                status, "not-found", f"this Jarvis has no {path}: update Jarvis"
            )
        if not isinstance(answer, dict):
            raise JarvisConnectionError(f"{path} answered {status} with no JSON object")
        if 200 <= status < 300:
            return Timed(answer, latency_ms)
        message = str(answer.get("error") or f"HTTP {status}")
        code = str(answer.get("code") or "")
        if status == 401:
            raise JarvisAuthError(message)
        if status == 429:
            raise JarvisRateLimitedError(
                message,
                int(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if status in (400, 413, 422):
            raise JarvisRequestError(status, code, message)
        if status == 503:
            raise JarvisUnavailableError(message)
        raise JarvisConnectionError(f"{path} answered {status}: {message}")
