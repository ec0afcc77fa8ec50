"""Logs without a raw client IP or secret: the access log and aiohttp's error lines.

The collector stores only a client's network prefix (``udfs.enrich.ip_prefix``: IPv4 /24, IPv6 /48),
never the address (docs/contracts.md §1 ``context.ip_prefix``); its logs keep to the same rule:

- :class:`PrefixAccessLogger` replaces aiohttp's default access log (whose ``%a`` is the peer address
  and whose ``%r`` carries the query string, i.e. ``write_key=`` and session ids). One line per request:
  ``<ip prefix> "<method> <path without query>" <status> <bytes> <ms>``.
- :class:`ClientIpFilter` rewrites IP-address arguments of log records (aiohttp's
  ``"Error handling request from %s"``) to their prefix; :func:`install_log_filters` puts it on the
  ``aiohttp.server`` and ``aiohttp.web`` loggers.

The address used is the one the collector would store (``X-Forwarded-For`` only when the app's
settings trust it).
"""
from __future__ import annotations

import ipaddress
import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, Request, StreamResponse

from udfs.enrich import ip_prefix

#: Loggers whose records may carry a client address as an argument.
FILTERED_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access")


#: Whether the app trusts ``X-Forwarded-For`` (``CollectorSettings.trust_forwarded_for``; set by
#: ``collector.app.create_app``).
TRUST_FORWARDED_KEY = web.AppKey("trust_forwarded_for", bool)


def client_ip(request: BaseRequest, trust_forwarded_for: bool) -> str | None:
    """The client's address: the first ``X-Forwarded-For`` hop when the collector sits behind a proxy
    it trusts, else the peer address. Used for rate limits and the network prefix, never stored."""
    if trust_forwarded_for:
        fwd = request.headers.get("X-Forwarded-For")
        if fwd:
            return fwd.split(",")[0].strip()
    return request.remote


def _client_address(request: BaseRequest) -> str | None:
    # a request refused before routing (a malformed one) has no app: use the peer address
    app = request.app if isinstance(request, Request) and request._match_info is not None else None
    return client_ip(request, bool(app.get(TRUST_FORWARDED_KEY, False)) if app is not None else False)


class PrefixAccessLogger(AbstractAccessLogger):
    """aiohttp access logger: network prefix instead of the address, path without the query string."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:  # noqa: A002
        self.logger.info('%s "%s %s" %s %s %.1fms', ip_prefix(_client_address(request)) or "-",
                         request.method, request.path, response.status, response.body_length, time * 1000)


def _is_ip(value: object) -> bool:
    if not isinstance(value, str) or not value or len(value) > 64:
        return False
    try:
        ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return False
    return True


class ClientIpFilter(logging.Filter):
    """Replace every argument of a record that is an IP address by its network prefix."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_is_ip(a) for a in args):
            record.args = tuple(ip_prefix(a) if _is_ip(a) else a for a in args)
        return True


_FILTER = ClientIpFilter()


def install_log_filters() -> None:
    """Put :class:`ClientIpFilter` on :data:`FILTERED_LOGGERS` (idempotent)."""
    for name in FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
