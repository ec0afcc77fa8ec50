"""The collector's settings: :class:`CollectorSettings`, read from the environment by :func:`collector_settings`.

The class lives in the one settings tree (``udfs.settings``); limits are those of ``udfs.limits`` (one
definition for collector, job and decision API); Kafka address, topics and SASL/TLS come from the tree's
``stack`` section.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from udfs.limits import BATCH_MAX_BYTES, BATCH_MAX_EVENTS, EVENT_MAX_BYTES
from udfs.settings import CollectorSettings, load_settings, parse_write_keys  # noqa: F401 - re-exported

#: Per-event limit, bytes of the event's JSON (``udfs.limits.EVENT_MAX_BYTES``).
MAX_EVENT_BYTES = EVENT_MAX_BYTES
#: Per-request limit, bytes of the (decompressed) body (``udfs.limits.BATCH_MAX_BYTES``).
MAX_BATCH_BYTES = BATCH_MAX_BYTES
#: Most events in one batch (``udfs.limits.BATCH_MAX_EVENTS``).
MAX_BATCH_EVENTS = BATCH_MAX_EVENTS
#: ``Content-Encoding`` values of a request body the collector decodes (aiohttp does the decoding).
CONTENT_ENCODINGS = ("gzip", "deflate", "identity")
#: Source name of requests when no write keys are configured, or of the single ``write_key``.
DEFAULT_SOURCE = "default"


def collector_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> CollectorSettings:
    """The ``collector`` section of :func:`udfs.settings.load_settings` (``INTENTFLOW_*`` variables of
    ``udfs.settings.VARIABLES``: Kafka, topics and SASL/TLS of the stack, ``INTENTFLOW_CORS_ORIGINS``,
    ``INTENTFLOW_WRITE_KEY``, ``INTENTFLOW_WRITE_KEYS``, ``INTENTFLOW_RATE_LIMIT_PER_S``,
    ``INTENTFLOW_RATE_BURST``), then ``overrides``.

    Raises:
        udfs.settings.SettingsError: any invalid setting of the environment (the whole tree is validated).
        ValueError: an override out of range.
    """
    section = load_settings(env).collector
    return replace(section, **overrides) if overrides else section
