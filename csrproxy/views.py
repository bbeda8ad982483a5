"""Service-level endpoints."""
from __future__ import annotations

import json

from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpResponse, JsonResponse

from .problems import PROBLEM_CONTENT_TYPE, Problem


def healthz(request):
    """Liveness and database reachability, for load balancers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})


def _problem(kind: str, title: str, status: int) -> HttpResponse:
    body = Problem(kind, title, status=status).as_dict()
    return HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)


def not_found(request, exception=None):
    """404 for paths no view matches: the API's error shape, not an HTML page."""
    return _problem("not-found", "Not found", 404)


def bad_request(request, exception=None):
    return _problem("malformed", "Bad request", 400)


def server_error(request):
    return _problem("server-error", "Internal error", 500)
