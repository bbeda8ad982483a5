"""``make bench``: CSR Proxy measured on the real stack, beside the floor client and lego.

Four parts, one table (see bench/README.md for what each figure means):

1. issuance through the whole service (HTTP API -> worker -> PowerDNS -> Pebble -> chain)
   at several sizes and concurrencies, beside ``acme_floor.py --flow steps`` and lego;
2. 1,000 requests waiting at once on a private Pebble whose validation sleeps;
3. API capacity: POST /api/v1/certificates/ under load beside GET /healthz;
4. cost per issuance (SQL statements, transactions, rows read, broker messages) with few
   and with 20,000 more requests in the database.

Everything runs on the bench's own database, queues, port and processes; whatever the
bench starts it stops again, also on failure or Ctrl-C.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the project and bench/ importable
    sys.path.insert(0, str(ROOT))


def _at_least_one(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrix", default="1x1,50x1,50x10,200x10,200x50",
                        help="issuance runs as NxC (N certificates, C in flight)")
    parser.add_argument("--rounds", type=_at_least_one, default=2,
                        help="service and floor runs per NxC, taking turns at going first; "
                             "the fastest of each is compared")
    parser.add_argument("--lego", type=int, default=3,
                        help="lego certificates, one after another (0: skip lego)")
    parser.add_argument("--waiting", type=int, default=1000,
                        help="requests in flight on the sleeping Pebble (0: skip part 2)")
    parser.add_argument("--sleep", type=int, default=10,
                        help="PEBBLE_VA_SLEEPTIME of the private Pebble (each of its 3 "
                             "lookups sleeps 0..N-1 s)")
    parser.add_argument("--api-seconds", type=int, default=8,
                        help="wrk duration per endpoint (0: skip part 3)")
    parser.add_argument("--api-connections", default="4,8,16",
                        help="wrk connections (requests in flight) against gunicorn, one run "
                             "per value")
    parser.add_argument("--api-csrs", type=int, default=5000,
                        help="distinct CSRs the POST load cycles through")
    parser.add_argument("--cost-batch", type=int, default=30,
                        help="certificates per cost batch (0: skip part 4)")
    parser.add_argument("--synthetic", type=int, default=20000,
                        help="requests (with certificate, events, TXT record) added before "
                             "the second cost batch")
    parser.add_argument("--worker-processes", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=8)
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the run directory (logs) even when everything went well")
    args = parser.parse_args(argv)
    args.matrix = [tuple(int(x) for x in item.lower().split("x"))
                   for item in args.matrix.split(",") if item]
    args.api_connections = [int(c) for c in args.api_connections.split(",") if c]
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def log(message: str) -> None:
    """Progress on stderr, the table on stdout."""
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    from bench import stack

    values = stack.stack_values()
    os.environ.update(DATABASE_URL=stack.BENCH_DATABASE_URL, DRAMATIQ_QUEUE=stack.QUEUE,
                      DJANGO_SETTINGS_MODULE="csrproxy.settings")
    run_dir = Path(tempfile.mkdtemp(prefix="csrproxy-bench-"))
    procs = stack.Processes(run_dir)
    tag = secrets.token_hex(3)
    log(f"run {tag}: logs in {run_dir}")
    ok = False
    started = time.monotonic()
    lock = None
    try:
        stack.ensure_database()
        lock = stack.BenchLock()
        stack.migrate()
        stack.choose_web_port()
        import logging

        import django

        django.setup()
        # The service logs at INFO; in this process only the bench's own progress matters.
        logging.getLogger().setLevel(logging.WARNING)
        from bench import sections

        ctx = sections.Context(args=args, values=values, procs=procs, run_dir=run_dir,
                               tag=tag, log=log)
        rows = sections.run_all(ctx)
        ok = True
    finally:
        procs.stop_all()
        if lock is not None:  # only the run holding the lock owns the bench queues
            try:
                stack.queues_delete(values.get("DRAMATIQ_BROKER_URL",
                                               "amqp://guest:guest@127.0.0.1:5672/"),
                                    stack.QUEUE, stack.API_QUEUE)
            except Exception as exc:  # the table matters more than a leftover empty queue
                log(f"could not delete the bench queues: {exc}")
            lock.release()
        if (not ok or args.keep_logs) and any(run_dir.iterdir()):
            log(f"logs kept in {run_dir}")
        else:
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
    from bench.report import render

    print(render(rows))
    print()
    print(sections.interpretation(ctx, rows, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    from bench.stack import BenchError

    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything the bench started is stopped")
        sys.exit(130)
    except BenchError as exc:
        log(f"ERROR: {exc}")
        sys.exit(2)
