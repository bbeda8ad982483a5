"""Dramatiq actors. Messages carry only a request id; all state is in the database, so a
message delivered twice, late, or never (the sweeper re-sends) does no harm."""
from __future__ import annotations

import logging

import dramatiq
from django.conf import settings

from . import flow

log = logging.getLogger(__name__)


@dramatiq.actor(queue_name=settings.DRAMATIQ_QUEUE, max_retries=5, min_backoff=1000,
                max_backoff=60_000, time_limit=300_000)
def advance_request(request_id: int) -> None:
    """Run the request's due steps, then schedule the next look if it has to wait."""
    wait = flow.request_advance(request_id)
    if wait is not None:
        advance_request.send_with_options(args=(request_id,), delay=int(wait * 1000))


def request_enqueue(request_id: int) -> None:
    """Queue a request's first look without ever failing the caller.

    Called after the request is committed: if the broker is down, the request is still
    safe in the database and the sweeper sends it once it is overdue.
    """
    try:
        advance_request.send(request_id)
    except Exception as exc:  # any broker failure: the sweeper is the fallback
        log.warning("request %s not queued (%s); the sweeper will send it",
                    request_id, type(exc).__name__)
