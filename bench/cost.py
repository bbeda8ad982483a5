"""Part 4: what one certificate costs the database and the broker, and whether that grows
with the size of the database.

Two identical batches, the first on an (almost) empty request table, the second after
``--synthetic`` finished requests (each with its certificate, events and TXT record, cloned
from a real one of the first batch) were added. Measured two ways:

* from inside the service processes (``bench.counting_settings``): SQL statements and the
  time spent waiting for them, broker messages published and processed;
* from outside, in PostgreSQL's statistics for the bench database: transactions
  (``pg_stat_database``) and rows read by sequential and index scans
  (``pg_stat_user_tables``), which grow with the table if a query scans it.

PostgreSQL flushes a backend's statistics when it has been idle for ~10 s, so each snapshot
waits for that. The bench's own polling (one indexed query per look) is subtracted.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from bench import stack
from bench.issuance import CompletionWatcher, service_batch
from bench.report import Row

if TYPE_CHECKING:
    from bench.sections import Context

STATS_FLUSH_SECONDS = 11.0  # PGSTAT_IDLE_INTERVAL is 10 s
DSN = stack.BENCH_DATABASE_URL.replace("postgres://", "postgresql://")


def pg_snapshot() -> dict[str, float]:
    """Cumulative counters of the bench database (one short connection, two statements)."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        db = conn.execute(
            "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated, tup_deleted "
            "FROM pg_stat_database WHERE datname = current_database()").fetchone()
        tables = conn.execute(
            "SELECT coalesce(sum(seq_scan), 0), coalesce(sum(seq_tup_read), 0), "
            "coalesce(sum(idx_scan), 0), coalesce(sum(idx_tup_fetch), 0) "
            "FROM pg_stat_user_tables").fetchone()
    keys = ("xacts", "inserted", "updated", "deleted", "seq_scans", "seq_rows", "idx_scans",
            "idx_rows")
    return dict(zip(keys, (float(v) for v in (*db, *tables)), strict=True))


def seq_scans_by_table() -> dict[str, tuple[int, int]]:
    with psycopg.connect(DSN, autocommit=True) as conn:
        rows = conn.execute("SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables")
        return {name: (scans, rows_read) for name, scans, rows_read in rows}


def counts_snapshot(directory: Path) -> dict[str, float]:
    """Statements and messages counted inside the service processes, by role."""
    totals: dict[str, float] = {}
    for path in directory.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key, value in data["counts"].items():
            totals[f"{data['role']}.{key}"] = totals.get(f"{data['role']}.{key}", 0) + value
    return totals


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after.keys() | before.keys()}


def _statements(counts: dict[str, float], role: str) -> float:
    """Statements sent by processes of ``role`` (savepoints included: each is a round trip)."""
    return sum(v for k, v in counts.items() if k.startswith(f"{role}.sql."))


class IndexedWatcher(CompletionWatcher):
    """Waits for step ``done`` (cleanup included) and reads only through the primary key
    index, so its own cost is exactly one transaction and one row per id per look."""

    def _run(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
        super()._run()

    def query(self, ids: list[int]) -> list[tuple[int, str]]:
        from signing.models import CertificateRequest

        return list(CertificateRequest.objects.filter(pk__in=ids, step="done")
                    .values_list("pk", "status"))


def measure(ctx: Context, label: str, token: str, zone: str, root: bytes, count_dir: Path,
            n: int) -> dict[str, Any]:
    """One batch of ``n`` certificates, one at a time (no lock or CPU contention in the
    timings), between two settled snapshots."""

    time.sleep(STATS_FLUSH_SECONDS)
    pg0, in0 = pg_snapshot(), counts_snapshot(count_dir)
    seq0 = seq_scans_by_table()
    watcher = IndexedWatcher(0.25)
    with watcher:
        batch = service_batch(label, stack.base_url(), token,
                              [f"c{ctx.tag}-{label}-{i}.{zone}" for i in range(n)], 1, root,
                              watcher=watcher, timeout=300)
    time.sleep(STATS_FLUSH_SECONDS)
    pg1, in1 = pg_snapshot(), counts_snapshot(count_dir)
    seq1 = seq_scans_by_table()
    pg, inside = _delta(pg1, pg0), _delta(in1, in0)
    ok = max(batch.ok, 1)
    # the bench's own load: each look is one transaction, one index fetch per id; the
    # watcher's SET and the first snapshot's two statements are one transaction each
    own_xacts = watcher.polls + 1 + 3
    seq = {t: (seq1[t][0] - seq0.get(t, (0, 0))[0], seq1[t][1] - seq0.get(t, (0, 0))[1])
           for t in seq1}
    result = {
        "batch": batch,
        "api_statements": _statements(inside, "api") / ok,
        "worker_statements": _statements(inside, "worker") / ok,
        "db_ms": 1000 * (inside.get("api.sql_seconds", 0)
                         + inside.get("worker.sql_seconds", 0)) / ok,
        "xacts": (pg["xacts"] - own_xacts) / ok,
        "seq_rows": pg["seq_rows"] / ok,
        "idx_rows": (pg["idx_rows"] - watcher.ids_polled) / ok,
        "writes": (pg["inserted"] + pg["updated"] + pg["deleted"]) / ok,
        "published": (inside.get("api.msg.published", 0)
                      + inside.get("worker.msg.published", 0)) / ok,
        "delayed": (inside.get("api.msg.published_delayed", 0)
                    + inside.get("worker.msg.published_delayed", 0)) / ok,
        "processed": inside.get("worker.msg.processed", 0) / ok,
        "seq_by_table": {t: v for t, v in seq.items() if v[0]},
        "inside": inside,
    }
    statements = result["api_statements"] + result["worker_statements"]
    ctx.log(f"cost {label}: {batch.ok}/{batch.n} ok; per cert {statements:.1f} statements "
            f"(api {result['api_statements']:.1f}), {result['xacts']:.1f} transactions, "
            f"{result['seq_rows']:.0f} seq-scanned + {result['idx_rows']:.0f} index rows, "
            f"{result['db_ms']:.1f} ms in SQL, {result['published']:.1f} messages published "
            f"({result['delayed']:.1f} delayed), {result['processed']:.1f} processed")
    shapes = sorted((k.split(".", 2) for k in inside if ".stmt_seconds." in k),
                    key=lambda parts: -inside[".".join(parts)])[:10]
    for role, _, shape in shapes:
        calls, seconds = inside[f"{role}.stmt.{shape}"], inside[f"{role}.stmt_seconds.{shape}"]
        ctx.log(f"  {role:6s} {calls / ok:5.1f}/cert {1000 * seconds / ok:6.1f} ms/cert  {shape}")
    scans = sorted(result["seq_by_table"].items(), key=lambda kv: -kv[1][1])[:5]
    ctx.log("  sequential scans (table: scans, rows): "
            + ", ".join(f"{t}: {s}, {r}" for t, (s, r) in scans))
    return result


def seed(count: int, template_id: int) -> float:
    """Add ``count`` finished requests cloned from a real one, with certificate, events and
    TXT record, created over the last days (inside every 7-day window). Returns seconds."""
    from django.db import connection, transaction

    from dns_provisioning.models import ChallengeRecord
    from signing.models import CertificateRequest

    started = time.monotonic()
    request_table = CertificateRequest._meta.db_table
    columns = [f.column for f in CertificateRequest._meta.concrete_fields if f.column != "id"]
    spread = "now() - g * interval '20 seconds'"
    overrides = {
        "names": "jsonb_build_array('syn' || g || '.' || (t.names->>0))",
        "public_key_sha256": "md5(g::text || 'a') || md5(g::text || 'b')",
        "idempotency_key": "''",
        "lease_until": "NULL",
        "created_at": spread,
        "order_started_at": spread,
        "updated_at": f"{spread} + interval '1 second'",
        "finished_at": f"{spread} + interval '1 second'",
        "next_attempt_at": f"{spread} + interval '1 second'",
        "deadline_at": f"{spread} + interval '1 hour'",
    }
    select = ", ".join(overrides.get(c, f"t.{c}") for c in columns)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {request_table}")
        first_new = cursor.fetchone()[0] + 1
        cursor.execute(
            f"INSERT INTO {request_table} ({', '.join(columns)}) SELECT {select} "
            f"FROM {request_table} t, generate_series(1, %s) g WHERE t.id = %s",
            [count, template_id])
        # every table that points at a request: clone the template's rows for each new one
        for relation in CertificateRequest._meta.related_objects:
            model = relation.related_model
            fk = relation.field.column
            cols = [f.column for f in model._meta.concrete_fields if f.column != "id"]
            special = {fk: "r.id", "serial": "md5(r.id::text)", "at": "r.created_at",
                       "created_at": "r.created_at"}
            picked = ", ".join(special.get(c, f"t.{c}") for c in cols)
            cursor.execute(
                f"INSERT INTO {model._meta.db_table} ({', '.join(cols)}) SELECT {picked} "
                f"FROM {model._meta.db_table} t, {request_table} r "
                f"WHERE t.{fk} = %s AND r.id >= %s", [template_id, first_new])
        records = ChallengeRecord._meta.db_table
        cols = [f.column for f in ChallengeRecord._meta.concrete_fields if f.column != "id"]
        special = {"owner": "'request:' || r.id",
                   "name": "'_acme-challenge.' || (r.names->>0)",
                   "created_at": "r.created_at", "removed_at": "r.finished_at",
                   "needs_sync": "false"}
        picked = ", ".join(special.get(c, f"t.{c}") for c in cols)
        cursor.execute(
            f"INSERT INTO {records} ({', '.join(cols)}) SELECT {picked} FROM {records} t, "
            f"{request_table} r WHERE t.owner = %s AND r.id >= %s",
            [f"request:{template_id}", first_new])
    with connection.cursor() as cursor:  # what autovacuum would have done by then
        tables = [request_table, records,
                  *(r.related_model._meta.db_table for r in
                    CertificateRequest._meta.related_objects)]
        cursor.execute(f"ANALYZE {', '.join(tables)}")
    connection.close()  # its statistics are flushed now, not in 10 s
    return time.monotonic() - started


def part_cost(ctx: Context, pebble: stack.PrivatePebble) -> list[Row]:
    from bench.fixtures import product_ensure, requests_reset, token_create
    from bench.sections import issuing_account, service_processes
    from signing.models import CertificateRequest

    args = ctx.args
    requests_reset()
    zone = product_ensure("issue")
    token = token_create("issue")
    issuing_account(ctx, pebble)
    count_dir = ctx.run_dir / "counts"
    count_dir.mkdir(exist_ok=True)
    env = stack.service_env(DJANGO_SETTINGS_MODULE="bench.counting_settings",
                            BENCH_COUNT_DIR=str(count_dir))
    web, worker = service_processes(ctx, env)
    try:
        threads = args.worker_processes * args.worker_threads
        warm = service_batch("warm-up", stack.base_url(), token,
                             [f"cw{ctx.tag}-{i}.{zone}" for i in range(2 * threads)], threads,
                             pebble.root)
        if warm.errors:
            raise stack.BenchError(f"cost warm-up failed: {warm.errors}")
        few = measure(ctx, "few", token, zone, pebble.root, count_dir, args.cost_batch)
        rows_before = CertificateRequest.objects.count()
        template = few["batch"].ids[0]
        seconds = seed(args.synthetic, template)
        rows_after = CertificateRequest.objects.count()
        ctx.log(f"cost: added {rows_after - rows_before} synthetic requests (with "
                f"certificates, events, TXT records) in {seconds:.1f} s")
        many = measure(ctx, "many", token, zone, pebble.root, count_dir, args.cost_batch)
    finally:
        ctx.procs.stop(worker)
        ctx.procs.stop(web)
    ctx.facts["cost"] = {"few": few, "many": many, "rows_before": rows_before,
                         "rows_after": rows_after}
    return _rows(few, many, rows_before, rows_after)


def _rows(few: dict[str, Any], many: dict[str, Any], rows_before: int,
          rows_after: int) -> list[Row]:
    def pair(key: str, fmt: str = "{:.1f}") -> tuple[str, str, str, bool]:
        a, b = few[key], many[key]
        # counts: 10 % and one unit of slack (a badNonce retry, a re-poll); time: 50 %, as
        # commit latency alone moves it by a quarter between two runs (the counts decide)
        grows = b > a * 1.5 if key == "db_ms" else b > a * 1.10 + 1.0
        return fmt.format(a), fmt.format(b), f"{b / a:.2f}x" if a else "n/a", not grows

    where = f"{rows_before} -> {rows_after} requests"
    rows = []
    for label, key, fmt in (
        ("SQL statements per cert (API + worker)", "total_statements", "{:.1f}"),
        ("DB transactions per cert (pg_stat_database)", "xacts", "{:.1f}"),
        ("rows read by seq scans per cert", "seq_rows", "{:.0f}"),
        ("rows read by index scans per cert", "idx_rows", "{:.0f}"),
        ("rows written per cert", "writes", "{:.1f}"),
        ("time waiting for SQL per cert", "db_ms", "{:.1f} ms"),
        ("broker messages published per cert", "published", "{:.1f}"),
        ("broker messages processed per cert", "processed", "{:.1f}"),
    ):
        for side in (few, many):
            side["total_statements"] = side["api_statements"] + side["worker_statements"]
        a, b, ratio, ok = pair(key, fmt)
        detail = ""
        if key == "total_statements":
            detail = (f" (API {few['api_statements']:.1f} / {many['api_statements']:.1f})")
        if key == "published":
            detail = f" (delayed {few['delayed']:.1f} / {many['delayed']:.1f})"
        rows.append(Row("4 cost", label, f"few rows: {a}", f"+{rows_after - rows_before} rows:"
                        f" {b}{detail}", ratio, f"flat ({where})", ok))
    return rows
