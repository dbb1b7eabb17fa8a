"""The OpenAPI 3.1 document served at ``/openapi.json``, written by hand.

Hand-written rather than generated so it states the error shapes, the SSE
stream and the two security schemes exactly; a test checks that every route
the app serves is described here and the other way round.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_JOB = {"$ref": "#/components/schemas/Job"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
_ERRORS = {
    "401": _json(_ERROR, "missing or wrong bearer token"),
    "404": _json(_ERROR, "no such job"),
    "422": _json(_ERROR, "invalid request; `field` names the culprit"),
    "503": _json(_ERROR, "the job database is unavailable (Retry-After: 1)"),
}
_REPORT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Report"}}},
}


def document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Asya gateway",
            "version": version,
            "description": "Submit pipeline jobs, follow them live, cancel them. Reports come from sidecars.",
        },
        "security": [{"client": []}],
        "paths": {
            "/jobs": {
                "post": {
                    "operationId": "createJob",
                    "summary": "Create a job from a route and a payload, or from a tool and its arguments",
                    "parameters": [
                        {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateJob"}}},
                    },
                    "responses": {
                        **_ERRORS,
                        "201": _json(_JOB, "created and published"),
                        "200": _json(_JOB, "the job this Idempotency-Key already created"),
                        "404": _json(_ERROR, "`tool` requests: no such tool (`field` is `tool`)"),
                        "409": _json(_ERROR, "Idempotency-Key reused with a different body"),
                        "422": _json(_ERROR, "invalid request; `field` names the culprit (`params.items[2].text`)"),
                        "503": _json(_ERROR, "the broker did not confirm the publish, or the database is down"),
                    },
                },
                "get": {
                    "operationId": "listJobs",
                    "summary": "Jobs, newest first, with keyset pagination",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/Status"}},
                        {
                            "name": "tool",
                            "in": "query",
                            "description": "only jobs created by this tool",
                            "schema": {"type": "string", "maxLength": 200},
                        },
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "jobs": {"type": "array", "items": _JOB},
                                    "next_cursor": {"type": ["string", "null"]},
                                },
                            },
                            "a page of jobs; pass next_cursor to get the next one",
                        ),
                        **_ERRORS,
                    },
                },
            },
            "/mcp/tools/call": {
                "post": {
                    "operationId": "callTool",
                    "summary": "Call a configured tool: creates its job and answers with the job id and stream URL",
                    "parameters": [
                        {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ToolCall"}}},
                    },
                    "responses": {
                        **_ERRORS,
                        "201": _json({"$ref": "#/components/schemas/ToolReceipt"}, "created and published"),
                        "200": _json({"$ref": "#/components/schemas/ToolReceipt"}, "the job this key already created"),
                        "404": _json(_ERROR, "no such tool (`field` is `tool`)"),
                        "409": _json(_ERROR, "Idempotency-Key reused with a different body"),
                        "422": _json(
                            _ERROR, "arguments break the tool's schema; `field` is e.g. `params.items[2].text`"
                        ),
                        "503": _json(_ERROR, "the broker did not confirm the publish, or the database is down"),
                    },
                }
            },
            "/jobs/{id}": {
                "get": {
                    "operationId": "getJob",
                    "parameters": [_ID_PARAM],
                    "responses": {"200": _json(_JOB, "the job"), **_ERRORS},
                }
            },
            "/jobs/{id}/stream": {
                "get": {
                    "operationId": "streamJob",
                    "summary": "Server-Sent Events: history, live events, ends after the `final` event",
                    "parameters": [
                        _ID_PARAM,
                        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                        {"name": "last_event_id", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        **_ERRORS,
                        "200": {
                            "description": "events `created`, `progress`, `retrying`, `final`; id = event id",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "503": _json(_ERROR, "this replica's event feed or database is reconnecting; retry"),
                    },
                }
            },
            "/jobs/{id}/cancel": {
                "post": {
                    "operationId": "cancelJob",
                    "summary": "Mark the job cancelled (a finished job keeps its status)",
                    "parameters": [_ID_PARAM],
                    "responses": {"200": _json(_JOB, "the job after the request"), **_ERRORS},
                }
            },
            "/jobs/{id}/progress": {
                "post": {
                    "operationId": "reportProgress",
                    "summary": "Internal: a sidecar's progress report",
                    "security": [{"report": []}],
                    "parameters": [_ID_PARAM],
                    "requestBody": _REPORT_BODY,
                    "responses": {"200": _json({"type": "object"}, "recorded (or ignored: job ended)"), **_ERRORS},
                }
            },
            "/jobs/{id}/final": {
                "post": {
                    "operationId": "reportFinal",
                    "summary": "Internal: an end actor's final report (succeeded, failed, retrying)",
                    "security": [{"report": []}],
                    "parameters": [_ID_PARAM],
                    "requestBody": _REPORT_BODY,
                    "responses": {"200": _json({"type": "object"}, "recorded (or ignored: job ended)"), **_ERRORS},
                }
            },
            "/internal/cancellations": {
                "get": {
                    "operationId": "cancellations",
                    "summary": "Internal: ids of jobs cancelled after a cursor (sidecars poll it)",
                    "security": [{"report": []}],
                    "parameters": [
                        {"name": "after", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "cancelled": {"type": "array", "items": {"type": "string"}},
                                    "cursor": {"type": "string"},
                                    "more": {"type": "boolean"},
                                },
                            },
                            "a page of cancelled job ids; pass cursor back as after",
                        ),
                        **_ERRORS,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": {"description": "this document"}},
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "security": [],
                    "description": "Prometheus metrics (docs/metrics.md); counts only, no job data.",
                    "responses": {"200": {"description": "Prometheus text exposition"}},
                }
            },
            "/healthz": {
                "get": {"operationId": "healthz", "security": [], "responses": {"200": {"description": "up"}}}
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "security": [],
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "client": {"type": "http", "scheme": "bearer", "description": "a client token"},
                "report": {"type": "http", "scheme": "bearer", "description": "the report token (sidecars)"},
            },
            "schemas": {
                "Status": {
                    "type": "string",
                    "enum": ["queued", "running", "retrying", "succeeded", "failed", "cancelled"],
                },
                "CreateJob": {
                    "oneOf": [{"$ref": "#/components/schemas/RouteJob"}, {"$ref": "#/components/schemas/ToolCall"}]
                },
                "Deadline": {
                    "description": "absolute deadline of the whole job: RFC 3339 with an offset, or Unix seconds",
                    "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
                },
                "ToolCall": {
                    "type": "object",
                    "required": ["tool"],
                    "additionalProperties": False,
                    "properties": {
                        "tool": {"type": "string", "minLength": 1},
                        "params": {"type": "object", "description": "checked against the tool's `parameters` schema"},
                        "deadline": {"$ref": "#/components/schemas/Deadline"},
                        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "description": "deadline = now + this"},
                    },
                },
                "ToolReceipt": {
                    "type": "object",
                    "properties": {
                        "job_id": {"type": "string"},
                        "status": {"$ref": "#/components/schemas/Status"},
                        "tool": {"type": "string"},
                        "status_url": {"type": "string"},
                        "stream_url": {"type": "string"},
                        "cancel_url": {"type": "string"},
                    },
                },
                "RouteJob": {
                    "type": "object",
                    "required": ["route", "payload"],
                    "additionalProperties": False,
                    "properties": {
                        "deadline": {"$ref": "#/components/schemas/Deadline"},
                        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "description": "deadline = now + this"},
                        "route": {
                            "type": "object",
                            "required": ["actors"],
                            "properties": {
                                "actors": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                                "metadata": {"type": "object"},
                            },
                        },
                        "payload": {},
                        "headers": {"type": "object"},
                    },
                },
                "Job": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "parent_id": {"type": ["string", "null"]},
                        "status": {"$ref": "#/components/schemas/Status"},
                        "origin": {"type": "string", "enum": ["gateway", "injected", "fanout"]},
                        "tool": {"type": ["string", "null"], "description": "the tool that created it, if any"},
                        "route": {},
                        "progress": {},
                        "result": {},
                        "error": {},
                        "created_at": {"type": "string"},
                        "updated_at": {"type": "string"},
                        "finished_at": {"type": ["string", "null"]},
                        "links": {"type": "object"},
                    },
                },
                "Report": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "parent_id": {"type": ["string", "null"]},
                        "status": {"type": "string"},
                        "actor": {"type": "string"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                    },
                },
            },
        },
    }
