"""Enrichment from the request, done by the collector (``udfs.normalize._context``): device class and
bot flag from the User-Agent, and the client's network prefix instead of its IP address.

User agent (:func:`classify_user_agent`, ua-parser 1.x with its regexes; results cached)
    ``bot``/``is_bot`` when ua-parser's device family is ``Spider`` (its crawler list: Googlebot,
    bingbot, GPTBot, python-urllib, ...) or its browser family is a headless browser or an HTTP
    library (``BOT_UA_FAMILIES``, our own list) or the string contains ``Headless``; flag
    ``bot_user_agent``. Bots are flagged, never dropped. ``tablet``: device family iPad/Kindle or a
    brand ``*Tablet*`` (ua-parser's ``Generic_Android_Tablet``), or Android without the ``Mobile`` token
    (Google's guidance for Android tablets). ``mobile``: ``Mobi`` in the string (MDN "Browser detection
    using the user agent") or iOS/Android/Windows Phone. ``desktop``: any other recognised OS.
    Else ``unknown``. A client that declares ``context.is_bot = true`` itself (the SDK sets it from
    ``navigator.webdriver``) is also ``bot`` (flag ``bot_client_hint``); a client's ``false`` never
    overrules the user agent.

IP (:func:`ip_prefix`)
    The raw IP is never stored: IPv4 is truncated to its /24, IPv6 to its /48 (the same truncation as
    Google Analytics' IP anonymization: last octet / last 80 bits zeroed); IPv4-mapped IPv6 counts as
    IPv4. Unparseable -> null.
"""
from __future__ import annotations

import functools
import ipaddress

import ua_parser

#: ua-parser browser families that are not a person's browser (our own list; headless browsers and
#: HTTP client libraries as ua-parser names them).
BOT_UA_FAMILIES = frozenset(
    {
        "HeadlessChrome",
        "PhantomJS",
        "curl",
        "Wget",
        "Python Requests",
        "Python-urllib",
        "Go-http-client",
        "Apache-HttpClient",
        "okhttp",
    }
)
_MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS"})


@functools.lru_cache(maxsize=8192)
def classify_user_agent(user_agent: str | None) -> tuple[str, bool]:
    """``(device_class, is_bot)`` for a User-Agent string (rules in the module docstring; cached).

    ``device_class`` is one of ``desktop``, ``mobile``, ``tablet``, ``bot``, ``unknown``.
    """
    if not user_agent:
        return "unknown", False
    result = ua_parser.parse(user_agent)
    ua_family = result.user_agent.family if result.user_agent else None
    os_family = result.os.family if result.os else None
    device = result.device
    if (device is not None and device.family == "Spider") or ua_family in BOT_UA_FAMILIES or (
        "Headless" in user_agent
    ):
        return "bot", True
    dev_family = device.family if device else ""
    brand = (device.brand or "") if device else ""
    if dev_family.startswith(("iPad", "Kindle")) or "Tablet" in brand:
        return "tablet", False
    if os_family == "Android" and "Mobile" not in user_agent:
        return "tablet", False
    if "Mobi" in user_agent or os_family in _MOBILE_OS or dev_family in ("iPhone", "iPod"):
        return "mobile", False
    if os_family and os_family != "Other":
        return "desktop", False
    return "unknown", False


def ip_prefix(ip: str | None) -> str | None:
    """Truncate an IP address: IPv4 -> its /24, IPv6 -> its /48 (CIDR string); invalid/None -> None.

    >>> ip_prefix("203.0.113.77"), ip_prefix("2001:db8:abcd:12::1")
    ('203.0.113.0/24', '2001:db8:abcd::/48')
    """
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))
