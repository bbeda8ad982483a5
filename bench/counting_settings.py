"""The service's own settings plus counters of SQL statements and broker messages.

Used only by the cost-per-issuance part of the bench (``DJANGO_SETTINGS_MODULE=
bench.counting_settings``), so the service code stays untouched: an execute wrapper counts
every statement each process sends to PostgreSQL (and the time it waits for it), a Dramatiq
middleware counts every message each process publishes and processes. Each process writes
its totals to ``$BENCH_COUNT_DIR/<pid>.json`` a few times a second; the bench adds them up.
PostgreSQL's statistics views give the outside view of the same work (see bench/cost.py).
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dramatiq
from django.db.backends.signals import connection_created

from csrproxy.settings import *  # noqa: F403
from csrproxy.settings import DRAMATIQ_BROKER

COUNT_DIR = Path(os.environ.get("BENCH_COUNT_DIR", "/tmp/csrproxy-bench-counts"))
FLUSH_SECONDS = 0.2

_lock = threading.Lock()
_counts: dict[str, float] = {}
_flusher_pid: int | None = None


def _role() -> str:
    argv0 = Path(sys.argv[0]).name if sys.argv else ""
    return "api" if "gunicorn" in argv0 else "worker" if "dramatiq" in argv0 else argv0


def _bump(key: str, amount: float = 1) -> None:
    global _flusher_pid
    with _lock:
        _counts[key] = _counts.get(key, 0) + amount
        if _flusher_pid != os.getpid():  # first count in this (possibly forked) process
            _flusher_pid = os.getpid()
            threading.Thread(target=_flush_forever, daemon=True, name="bench-counts").start()


def _flush_forever() -> None:
    path = COUNT_DIR / f"{os.getpid()}.json"
    written: dict[str, float] = {}
    while True:
        time.sleep(FLUSH_SECONDS)
        with _lock:
            snapshot = dict(_counts)
        if snapshot != written:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"role": _role(), "counts": snapshot}))
            tmp.replace(path)
            written = snapshot


_IN_LIST = re.compile(r"(%s, )+%s")
_SAVEPOINT = re.compile(r'"s\d+_x\d+"')


def _shape(sql: str) -> str:
    """The statement without its variable parts (IN lists, savepoint names), its middle cut
    out: the verb and first table, and the end (WHERE, FOR UPDATE) say what it is."""
    shape = _SAVEPOINT.sub('"s_x"', _IN_LIST.sub("%s...", " ".join(sql.split())))
    return shape if len(shape) <= 150 else f"{shape[:70]} ... {shape[-75:]}"


def _count_statement(execute, sql: str, params: Any, many: bool, context: dict) -> Any:
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed = time.perf_counter() - started
        shape = _shape(sql)
        _bump(f"sql.{verb}")
        _bump("sql_seconds", elapsed)
        _bump(f"stmt.{shape}")
        _bump(f"stmt_seconds.{shape}", elapsed)


def _install_wrapper(sender: Any, connection: Any, **kwargs: Any) -> None:
    # connection_created fires on every (re)connect of the same wrapper: install once.
    if _count_statement not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_statement)


connection_created.connect(_install_wrapper)


class MessageCounter(dramatiq.Middleware):
    """Counts what goes through RabbitMQ: publishes (delayed ones go to the .DQ queue first
    and are published again to the queue when due) and messages processed."""

    def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        _bump("msg.published")
        if delay:
            _bump("msg.published_delayed")

    def before_process_message(self, broker: Any, message: Any) -> None:
        _bump("msg.processed")


DRAMATIQ_BROKER = {
    **DRAMATIQ_BROKER,
    "MIDDLEWARE": [*DRAMATIQ_BROKER["MIDDLEWARE"], "bench.counting_settings.MessageCounter"],
}
