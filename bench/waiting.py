"""Part 2: many requests waiting on a slow CA at once.

A private Pebble sleeps before each validation (PEBBLE_VA_SLEEPTIME), so every request
spends seconds with nothing to do but wait. If a waiting request held a worker thread,
throughput could not exceed threads / mean wait; the service claims waits never hold a
thread (flow.py stores ``next_attempt_at`` and re-sends a delayed message), so it should go
well past that bound, with hundreds of requests waiting while at most ``threads`` hold a
lease. Worker memory is sampled from /proc while they wait.
"""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench import stack
from bench.issuance import Batch
from bench.report import Row, ms

if TYPE_CHECKING:
    from bench.sections import Context

MIB = 1024


@dataclass
class Samples:
    """What the sampler saw once per ``interval`` while the batch ran."""

    interval: float
    rss: dict[int, list[int]] = field(default_factory=dict)  # pid -> KiB over time
    waiting: list[int] = field(default_factory=list)  # in flight, no worker holds it
    leased: list[int] = field(default_factory=list)  # in flight, a worker holds it now


def sample_loop(samples: Samples, pids: list[int], first_id: int,
                stopping: threading.Event) -> None:
    """RSS of each worker process and, from the database, who is waiting vs being worked.

    ``lease_until`` is set while a worker runs a request's steps and cleared after, so
    leased rows are requests holding a worker thread at that instant.
    """
    from django.db import connection

    try:
        while not stopping.is_set():
            for pid in pids:
                kib = stack.rss_kib(pid)
                if kib is not None:
                    samples.rss.setdefault(pid, []).append(kib)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FILTER (WHERE step <> 'done' AND (lease_until IS NULL "
                    "OR lease_until < now())), count(*) FILTER (WHERE step <> 'done' AND "
                    "lease_until >= now()) FROM signing_certificaterequest WHERE id >= %s",
                    [first_id])
                waiting, leased = cursor.fetchone()
            samples.waiting.append(waiting)
            samples.leased.append(leased)
            stopping.wait(samples.interval)
    finally:
        connection.close()


def validation_waits(ids: list[int]) -> list[float]:
    """Seconds each request spent between answering the challenge and the CA's verdict
    (events "step validate" -> "step finalize"): the wait the CA imposed."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(epoch FROM max(at) FILTER (WHERE message = 'step finalize') - "
            "min(at) FILTER (WHERE message = 'step validate')) FROM signing_requestevent "
            "WHERE request_id = ANY(%s) GROUP BY request_id", [ids])
        return [float(row[0]) for row in cursor.fetchall() if row[0] is not None]


def ca_sleep_mean(sleep_time: int) -> float:
    """Expected validation delay of Pebble: the slowest of its 3 lookups, each sleeping
    rand.Intn(sleep_time) whole seconds (pebble va.go), i.e. E[max of 3 U{0..S-1}]."""
    return sum(1 - (k / sleep_time) ** 3 for k in range(1, sleep_time))


def part_waiting(ctx: Context) -> list[Row]:
    from bench.fixtures import product_ensure, token_create
    from bench.sections import issue, issuing_account, service_processes
    from signing.models import CertificateRequest

    args = ctx.args
    sleepy = stack.PrivatePebble(ctx.procs, "pebble-sleepy", *stack.SLEEPY_PEBBLE_PORTS,
                                 {"PEBBLE_VA_SLEEPTIME": str(args.sleep)},
                                 ctx.values["ACME_TLS_CA"], ctx.dns_server)
    zone = product_ensure("issue")
    ctx.facts["token"] = token_create("issue")
    threads = args.worker_processes * args.worker_threads
    with sleepy:
        issuing_account(ctx, sleepy)
        web, worker = service_processes(ctx)
        try:
            warm = issue(ctx, sleepy, "waiting warm-up",
                         [f"ww{ctx.tag}-{i}.{zone}" for i in range(threads)], threads,
                         poll=0.2, timeout=120)
            if warm.errors:
                raise stack.BenchError(f"warm-up on the sleeping Pebble failed: {warm.errors[:3]}")
            pids = stack.worker_pids(worker)
            first_id = (CertificateRequest.objects.order_by("-id").values_list("id", flat=True)
                        .first() or 0) + 1
            samples = Samples(interval=1.0)
            stopping = threading.Event()
            sampler = threading.Thread(target=sample_loop,
                                       args=(samples, pids, first_id, stopping), daemon=True)
            names = [f"z{ctx.tag}-{i}.{zone}" for i in range(args.waiting)]
            ctx.log(f"waiting: {args.waiting} requests on a Pebble sleeping up to "
                    f"{args.sleep - 1} s x3 before validating")
            sampler.start()
            try:
                batch = issue(ctx, sleepy, f"waiting {args.waiting}", names, args.waiting,
                              poll=0.25, timeout=max(600.0, args.waiting * 0.6))
            finally:
                time.sleep(samples.interval)  # one look after the last request
                stopping.set()
                sampler.join(timeout=10)
            waits = validation_waits(batch.ids)
        finally:
            ctx.procs.stop(worker)
            ctx.procs.stop(web)
    return _rows(ctx, batch, samples, waits, threads)


def _rows(ctx: Context, batch: Batch, samples: Samples, waits: list[float],
          threads: int) -> list[Row]:
    for error in batch.errors[:5]:
        ctx.log(f"  waiting error: {error}")
    observed_wait = statistics.fmean(waits) if waits else float("nan")
    mean_wait = ca_sleep_mean(ctx.args.sleep)
    bound = threads / mean_wait
    peak_waiting = max(samples.waiting, default=0)
    peak_leased = max(samples.leased, default=0)
    ctx.facts["waiting"] = {"batch": batch, "mean_wait": mean_wait, "bound": bound,
                            "observed_wait": observed_wait, "peak_waiting": peak_waiting,
                            "peak_leased": peak_leased}
    ctx.log(f"waiting: {batch.ok}/{batch.n} in {batch.seconds:.0f} s = {batch.rate:.1f}/s; "
            f"CA sleeps {mean_wait:.2f} s on average (the service saw {observed_wait:.2f} s "
            f"from answer to verdict); held-thread bound {bound:.1f}/s; peak waiting "
            f"{peak_waiting}, peak leased {peak_leased}")
    failed = f" ({len(batch.errors)} FAILED)" if batch.errors else ""
    label = f"{batch.n} in flight, CA sleeps"
    rows = [
        Row("2 waiting", f"{label}: throughput",
            f"{batch.rate:.2f} certs/s ({batch.ok} in {batch.seconds:.0f} s){failed}",
            f"threads held: <= {bound:.2f} certs/s ({threads} threads / {mean_wait:.2f} s "
            "mean CA sleep)", f"{batch.rate / bound:.1f}x" if bound == bound else "n/a",
            "> 1x (waits hold no thread)", batch.rate > bound and not batch.errors),
        Row("2 waiting", f"{label}: requests waiting / holding a worker",
            f"peak {peak_waiting} waiting, at most {peak_leased} leased",
            f"{threads} worker threads", "",
            "waiting > threads, leased <= threads",
            peak_waiting > threads and peak_leased <= threads),
    ]
    issued = [svc for _, c, svc, _ in ctx.facts.get("issuance", []) if c > 1]
    if issued:
        fast = max(svc.rate for svc in issued)
        rows.append(Row(
            "2 waiting", f"{label}: throughput vs part 1 (CA without sleeps)",
            f"{batch.rate:.2f} certs/s", f"{fast:.2f} certs/s at best in part 1",
            f"{batch.rate / fast:.2f}x", "informative: ~1x = the CA's waits are overlapped"))
    rows += [
        Row("2 waiting", f"{label}: latency p50 / p95",
            f"{ms(batch.pct(50))} / {ms(batch.pct(95))}", "", "", ""),
    ]
    growth_ok = True
    parts = []
    for i, (pid, series) in enumerate(sorted(samples.rss.items())):
        if not series:
            continue
        start, peak, end = series[0], max(series), series[-1]
        parts.append(f"p{i} {start / MIB:.0f}->{peak / MIB:.0f}->{end / MIB:.0f}")
        # flat: within 10 % (or 8 MiB, allocator noise) of where it started
        growth_ok &= peak - start <= max(0.10 * start, 8 * MIB)
        ctx.facts.setdefault("rss", {})[pid] = series
    rows.append(Row("2 waiting", "worker RSS MiB start->peak->end (per process)",
                    ", ".join(parts), f"sampled every {samples.interval:.0f} s", "",
                    "flat: peak <= start + max(10 %, 8 MiB)", growth_ok and bool(parts)))
    return rows
