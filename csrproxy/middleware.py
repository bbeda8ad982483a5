"""Answer 503 (not 500) while the database is unreachable: clients should retry later."""
from __future__ import annotations

import json
import logging

from django.db.utils import InterfaceError, OperationalError
from django.http import HttpResponse

from .problems import PROBLEM_CONTENT_TYPE, Problem

log = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.error("database unavailable: %s", type(exception).__name__)
        problem = Problem("service-unavailable", "Service unavailable",
                          "The database is unreachable; retry shortly.", status=503)
        response = HttpResponse(json.dumps(problem.as_dict()), status=503,
                                content_type=PROBLEM_CONTENT_TYPE)
        response["Retry-After"] = "5"
        return response
