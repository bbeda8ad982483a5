"""One error shape for the whole API: RFC 9457 problem documents.

Services raise :class:`Problem`; DRF's own exceptions (authentication, parsing, throttling,
404) are converted by :func:`problem_exception_handler`, so a client only ever sees
``application/problem+json`` with a stable ``type``.
"""
from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:csrproxy:problem:"


class Problem(Exception):
    """An error the client can act on; ``kind`` becomes the problem ``type``."""

    def __init__(
        self,
        kind: str,
        title: str,
        detail: str = "",
        status: int = 400,
        subproblems: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.kind, self.title, self.detail, self.status = kind, title, detail, status
        self.subproblems = subproblems or []
        self.headers = headers or {}

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
        }
        if self.subproblems:
            body["subproblems"] = self.subproblems
        return body


def problem_response(problem: Problem) -> Response:
    return Response(
        problem.as_dict(),
        status=problem.status,
        headers=problem.headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


# The same answer for every authentication failure: no way to tell an unknown token from a
# revoked or expired one.
UNAUTHORIZED = Problem(
    "unauthorized", "Authentication required", "Missing or invalid bearer token.", status=401
)

_DRF_KINDS: dict[type[exceptions.APIException], tuple[str, str]] = {
    exceptions.ParseError: ("malformed", "Malformed request body"),
    exceptions.UnsupportedMediaType: ("unsupported-media-type", "Unsupported media type"),
    exceptions.MethodNotAllowed: ("method-not-allowed", "Method not allowed"),
    exceptions.NotAcceptable: ("not-acceptable", "Not acceptable"),
    exceptions.PermissionDenied: ("forbidden", "Forbidden"),
    exceptions.NotFound: ("not-found", "Not found"),
    exceptions.Throttled: ("throttled", "Too many requests"),
    exceptions.ValidationError: ("invalid-request", "Invalid request"),
}


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Problem):
        return problem_response(exc)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        response = problem_response(UNAUTHORIZED)
        response["WWW-Authenticate"] = "Bearer"
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: let Django log it and answer 500
    kind, title = next(
        (v for cls, v in _DRF_KINDS.items() if isinstance(exc, cls)), ("error", "Request failed")
    )
    detail = exc.detail if isinstance(exc.detail, str) else ""
    problem = Problem(kind, title, str(detail), status=exc.status_code)
    if isinstance(exc, exceptions.ValidationError):
        problem.subproblems = [{"field": k, "detail": v} for k, v in _flatten(exc.detail)]
    if isinstance(exc, exceptions.Throttled) and exc.wait:
        problem.headers["Retry-After"] = str(int(exc.wait) + 1)
    return problem_response(problem)


def _flatten(detail: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(detail, dict):
        return [pair for k, v in detail.items() for pair in _flatten(v, f"{prefix}{k}")]
    if isinstance(detail, list):
        return [pair for v in detail for pair in _flatten(v, prefix)]
    return [(prefix or "body", str(detail))]
