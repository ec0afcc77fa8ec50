"""Logs without a raw client IP or secret: the access log and aiohttp's error lines.

The collector stores only a client's network prefix (``udfs.normalize.ip_prefix``: IPv4 /24, IPv6 /48),
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

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, Request, StreamResponse

from udfs.normalize import ip_prefix

#: Loggers whose records may carry a client address as an argument.
FILTERED_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access")


def _client_address(request: BaseRequest) -> str | None:
    from collector.app import SETTINGS_KEY, _client_ip  # local: app imports this module

    # a request refused before routing (a malformed one) has no app: use the peer address
    app = request.app if isinstance(request, Request) and request._match_info is not None else None
    settings = app.get(SETTINGS_KEY) if app is not None else None
    if settings is None:
        return request.remote
    return _client_ip(request, settings)  # type: ignore[arg-type]


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
