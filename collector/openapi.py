"""The OpenAPI 3.0 document of the collector and the decision API, served at ``GET /openapi.json``.

Built from the same definitions the handlers use: limits from :mod:`udfs.limits`, event types and DLQ
reason codes from :mod:`udfs.contract`. The request body describes what a *client* sends (the raw
event before normalization, ``udfs.normalize.normalize_event``); the event on Kafka is
``schemas/event.v1.json``. ``tests/integration/test_collector_fuzz.py`` runs schemathesis against a
live collector with this document.
"""
from __future__ import annotations

from typing import Any

from udfs.contract import EVENT_TYPES, REASONS
from udfs.limits import BATCH_MAX_BYTES, BATCH_MAX_EVENTS, EVENT_MAX_BYTES, ID_MAX_CHARS, STRING_MAX_CHARS

#: Version of this document (not of the event schema).
API_VERSION = "1.0.0"

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "stable error code"},
                   "detail": {"type": "string"}},
    "additionalProperties": True,
}


def _error_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if headers:
        out["headers"] = headers
    return out


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before resending the same events",
                                "schema": {"type": "integer", "minimum": 1}}}

_ID = {"type": "string", "minLength": 1, "maxLength": ID_MAX_CHARS}
_TIMESTAMP = {"description": "epoch ms (s, µs, ns and ISO 8601 strings are read too, see udfs.normalize)",
              "oneOf": [{"type": "number"}, {"type": "string", "maxLength": 64}]}


def _schemas() -> dict[str, Any]:
    raw_event = {
        "type": "object",
        "description": "one event as a client sends it (docs/contracts.md §1; normalized by the collector). "
                       f"At most {EVENT_MAX_BYTES} bytes of JSON; strings longer than {STRING_MAX_CHARS} "
                       "characters are cut (flag text_truncated).",
        "required": ["type", "session_id", "client_ts_ms"],
        "properties": {
            "event_id": {"type": "string", "description": "UUID; retries reuse it (dedup key)"},
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "session_id": _ID,
            "anonymous_id": _ID,
            "user_id": {**_ID, "nullable": True},
            "seq": {"type": "integer", "minimum": 0, "nullable": True},
            "client_ts_ms": _TIMESTAMP,
            "sent_at_ms": {**_TIMESTAMP, "nullable": True},
            "page": {"type": "object", "additionalProperties": True},
            "context": {"type": "object", "additionalProperties": True},
            "props": {"type": "object", "additionalProperties": True},
        },
        "additionalProperties": True,
    }
    batch = {
        "type": "object",
        "required": ["events"],
        "properties": {
            "sent_at_ms": {**_TIMESTAMP, "nullable": True},
            "events": {"type": "array", "maxItems": BATCH_MAX_EVENTS,
                       "items": {"$ref": "#/components/schemas/RawEvent"}},
        },
        "additionalProperties": True,
    }
    result = {
        "type": "object",
        "required": ["index", "status", "event_id"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "status": {"type": "string", "enum": ["accepted", "rejected", "duplicate"]},
            "event_id": {"type": "string", "nullable": True},
            "reason": {"type": "string", "enum": sorted(REASONS)},
            "detail": {"type": "string"},
        },
    }
    batch_result = {
        "type": "object",
        "required": ["accepted", "rejected", "duplicates", "received_at_ms", "results"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "received_at_ms": {"type": "integer"},
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/EventResult"}},
        },
    }
    decision = {
        "type": "object",
        "required": ["session_id", "action", "params", "source", "lookup_ms", "served_at_ms"],
        "properties": {
            "session_id": {"type": "string"},
            "action": {"type": "string", "description": "`default` when there is no decision"},
            "params": {"type": "object", "additionalProperties": True},
            "source": {"type": "string", "enum": ["redis", "none", "redis_unavailable"]},
            "lookup_ms": {"type": "number", "minimum": 0},
            "served_at_ms": {"type": "integer"},
        },
        "additionalProperties": True,
    }
    return {"Error": _ERROR, "RawEvent": raw_event, "Batch": batch, "EventResult": result,
            "BatchResult": batch_result, "Decision": decision}


def openapi_document(*, include_decision: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document (a JSON-able dict); ``include_decision`` adds ``/v1/decision``."""
    body_schema = {"oneOf": [{"$ref": "#/components/schemas/Batch"},
                             {"type": "array", "maxItems": BATCH_MAX_EVENTS,
                              "items": {"$ref": "#/components/schemas/RawEvent"}},
                             {"$ref": "#/components/schemas/RawEvent"}]}
    events_post = {
        "summary": "Send a batch of events",
        "description": "The same JSON body is accepted as text/plain (sendBeacon) or without Content-Type. "
                       f"Body at most {BATCH_MAX_BYTES} bytes after decompression (Content-Encoding gzip or "
                       "deflate), at most "
                       f"{BATCH_MAX_EVENTS} events. Answered after the broker acknowledged every record, or "
                       "503 by produce_timeout_s after the body was read; a 503'd batch is resent with the "
                       "same event ids (duplicates are dropped by event_id, docs/contracts.md §1).",
        "operationId": "postEvents",
        "parameters": [
            {"name": "write_key", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "write key (sendBeacon cannot set headers)"},
            {"name": "X-Write-Key", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        # text/plain (what sendBeacon sends) and no Content-Type are accepted with the same JSON body;
        # only application/json is listed, as a text/plain schema could only say "any string".
        "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}},
        "responses": {
            "200": {"description": "every event accepted (on the raw topic), rejected (in the DLQ with a "
                                   "reason) or a duplicate",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}}},
            "400": _error_response("invalid_json, bad_batch, too_many_events, bad_content_encoding"),
            "401": _error_response("invalid_write_key"),
            "403": _error_response("origin_not_allowed (CORS allow-list)"),
            "413": _error_response("batch_too_large, event_too_large"),
            "415": _error_response("unsupported_content_type, unsupported_content_encoding"),
            "429": _error_response("rate_limited", _RETRY_AFTER),
            "503": _error_response("kafka_unavailable: nothing is reported accepted; resend", _RETRY_AFTER),
        },
    }
    paths: dict[str, Any] = {
        "/v1/events": {
            "post": events_post,
            "options": {"summary": "CORS preflight", "operationId": "preflightEvents",
                        "responses": {"204": {"description": "allowed origin"},
                                      "403": _error_response("origin_not_allowed")}},
        },
        "/healthz": {"get": {"summary": "Broker connection", "operationId": "healthz", "responses": {
            "200": {"description": "connected", "content": {"application/json": {"schema": {"type": "object"}}}},
            "503": {"description": "no broker", "content": {"application/json": {"schema": {"type": "object"}}}},
        }}},
        "/metrics": {"get": {"summary": "Prometheus metrics (text format 0.0.4)", "operationId": "metrics",
                             "responses": {"200": {"description": "metrics",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "responses": {
            "200": {"description": "OpenAPI 3.0.3", "content": {"application/json": {"schema": {"type": "object"}}}},
        }}},
    }
    if include_decision:
        paths["/v1/decision"] = {"get": {
            "summary": "The latest action for a session",
            "operationId": "getDecision",
            "parameters": [{"name": "session_id", "in": "query", "required": True, "schema": _ID}],
            "responses": {
                "200": {"description": "the stored action, or the default (source says which)",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}},
                "400": _error_response(f"session_id missing or longer than {ID_MAX_CHARS} characters"),
            },
        }}
    if include_decision:
        paths["/v1/experiments"] = {"get": {
            "summary": "Experiment reports: counts per arm, lift with 95 % CI, mSPRT, SRM (docs/experiments.md)",
            "operationId": "getExperiments",
            "parameters": [
                {"name": "experiment_id", "in": "query", "required": False, "schema": _ID},
                {"name": "holdout_pct", "in": "query", "required": False,
                 "schema": {"type": "number", "minimum": 0, "maximum": 100}},
            ],
            "responses": {
                "200": {"description": "`experiments`: {experiment id: {simulation, counts, report, error?}}",
                        "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": _error_response(f"holdout_pct not a number within 0..100, experiment_id empty or longer than {ID_MAX_CHARS} characters"),
                "503": _error_response("Redis did not answer"),
            },
        }}
    return {
        "openapi": "3.0.3",
        "info": {"title": "intentflow collector and decision API", "version": API_VERSION,
                 "description": "POST /v1/events -> Kafka; GET /v1/decision <- Redis (docs/contracts.md)."},
        "paths": paths,
        "components": {"schemas": _schemas()},
    }
