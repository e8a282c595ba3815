"""What every request passes first: the ``Host`` check, the token, and the one log line it leaves.

* ``Host``: a server bound to a loopback address answers only requests addressed to a loopback name
  (``localhost``, ``127.0.0.1``, ``::1``). A web page elsewhere cannot then reach it by DNS rebinding (a name of
  the attacker's that first points at the attacker's server, then at 127.0.0.1): its requests carry the attacker's
  name and get 400.
* Token: when the server has one, every request carries it, as ``Authorization: Bearer TOKEN`` (programs), as
  ``?token=TOKEN`` in the URL (a browser opening the page: the answer then sets an ``HttpOnly``, ``SameSite=Strict``
  cookie so that the page's own requests carry it), or in that cookie; otherwise 401. Tokens are compared in
  constant time and never logged.
* Log: one line per request when its answer is complete (a stream: when it ends), with the client, method, path
  (a token in the query shown as ``***``), status, bytes sent and milliseconds.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.responses import JSONResponse

__all__ = ["COOKIE", "LOOPBACK_NAMES", "Guard"]

COOKIE = "ferlite_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_TOKEN_IN_QUERY = re.compile(r"(^|&)token=[^&]*")
access_log = logging.getLogger("ferlite.serve.access")


def _host_name(host: str) -> str:
    """A ``Host`` header without its port: ``[::1]:8000`` -> ``::1``, ``localhost:8000`` -> ``localhost``."""
    if host.startswith("["):
        return host[1:host.find("]")].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


class Guard:
    """ASGI middleware: the ``Host`` check (``allowed_hosts``; None: any), the ``token`` (None: none needed) and
    the access log line of every HTTP request."""

    def __init__(self, app, *, token: str | None, allowed_hosts: frozenset[str] | None) -> None:
        self.app, self.token, self.allowed_hosts = app, token, allowed_hosts

    def _given_token(self, headers: dict[bytes, bytes], query: str) -> tuple[str | None, bool]:
        """The token a request carries, and whether it came in the URL (the answer then sets the cookie)."""
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip(), False
        in_query = parse_qs(query).get("token")
        if in_query:
            return in_query[0], True
        morsel = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1")).get(COOKIE)
        return (morsel.value if morsel else None), False

    def _refusal(self, headers: dict[bytes, bytes], query: str) -> tuple[JSONResponse | None, bool]:
        """The answer refusing a request (None: let it through), and whether to set the token cookie."""
        if self.allowed_hosts is not None:
            host = headers.get(b"host", b"").decode("latin-1")
            if _host_name(host) not in self.allowed_hosts:
                got = f"Host {host!r}" if host else "no Host header"
                return JSONResponse({"detail": f"this server listens on a loopback address and answers requests "
                                               f"addressed to {', '.join(sorted(self.allowed_hosts))}; got {got}"},
                                    400), False
        if self.token is None:
            return None, False
        given, from_query = self._given_token(headers, query)
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            return None, from_query
        what = "a wrong token" if given else "no token"
        return JSONResponse({"detail": f"unauthorized: the request carries {what}; this server needs its token, "
                                       "as the header 'Authorization: Bearer TOKEN', or (a browser) in the URL: "
                                       "/?token=TOKEN"},
                            401, headers={"WWW-Authenticate": 'Bearer realm="ferlite"'}), False

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        headers = dict(scope["headers"])
        query = scope.get("query_string", b"").decode("latin-1")
        status, sent = 500, 0  # 500 stands if the application fails before answering
        refusal, set_cookie = self._refusal(headers, query)

        async def send_logged(message: dict) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                if set_cookie:
                    cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode()
                    message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await (refusal or self.app)(scope, receive, send_logged)
        finally:
            client = scope.get("client")
            where = f"{client[0]}:{client[1]}" if client else "-"
            shown = _TOKEN_IN_QUERY.sub(r"\1token=***", query)
            path = scope["path"] + (f"?{shown}" if shown else "")
            access_log.info('%s "%s %s" %d %dB %.1f ms', where, scope["method"], path, status, sent,
                            1000 * (time.perf_counter() - t0))
