"""Cross-cutting HTTP guards: body size, database outages, admin password guessing."""
from __future__ import annotations

import hashlib
import json
import logging

from django.conf import settings
from django.core.cache import cache
from django.db.utils import InterfaceError, OperationalError
from django.http import HttpResponse

from .problems import PROBLEM_CONTENT_TYPE, Problem

log = logging.getLogger(__name__)


def _problem_response(problem: Problem, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(problem.as_dict()), status=problem.status,
                            content_type=PROBLEM_CONTENT_TYPE)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class BodySizeLimitMiddleware:
    """413 before anything reads an oversized body (Django alone would answer 400)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return _problem_response(Problem(
                "body-too-large", "Request body too large",
                f"Bodies are limited to {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.", status=413))
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """503 (not 500) while the database is unreachable: clients should retry later."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.error("database unavailable: %s", type(exception).__name__)
        return _problem_response(
            Problem("service-unavailable", "Service unavailable",
                    "The database is unreachable; retry shortly.", status=503),
            Retry_After="5")


class AdminLoginGuardMiddleware:
    """Refuse admin logins after repeated failures per username and per client address.

    Counters live in the shared cache, so every web process sees them; a success clears the
    username's counter. The password is never part of a key or a log line.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path != _login_path():
            return self.get_response(request)
        username = request.POST.get("username", "")
        keys = [_key("user", username.lower()), _key("ip", request.META.get("REMOTE_ADDR", ""))]
        if any(cache.get(k, 0) >= settings.ADMIN_LOGIN_MAX_FAILURES for k in keys):
            log.warning("admin login refused after repeated failures (user %r)", username)
            return HttpResponse(
                "Too many failed logins. Try again later.", status=429,
                headers={"Retry-After": str(settings.ADMIN_LOGIN_WINDOW_SECONDS)},
                content_type="text/plain")
        response = self.get_response(request)
        if response.status_code == 302:  # the admin redirects on success
            cache.delete(keys[0])
        else:
            for k in keys:
                cache.add(k, 0, settings.ADMIN_LOGIN_WINDOW_SECONDS)
                cache.incr(k)
        return response


def _login_path() -> str:
    from django.urls import reverse

    return reverse("admin:login")


def _key(kind: str, value: str) -> str:
    return f"admin-login:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"
