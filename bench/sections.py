"""The four parts of the bench, each starting and stopping the service processes it needs.

Each part returns table rows; :func:`interpretation` turns the rows into a few sentences.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import stack
from bench.fixtures import (
    account_make_default,
    product_ensure,
    requests_cancel,
    requests_reset,
    token_create,
)
from bench.issuance import (
    Batch,
    FloorResult,
    FloorTimeout,
    floor_batch,
    floor_env,
    lego_batch,
    lego_env,
    rsa_csr_cpu_seconds,
    service_batch,
)
from bench.report import Row, ms


@dataclass
class Context:
    """What every part needs: flags, stack settings, the process registry, where to log,
    and ``facts`` it leaves for the interpretation."""

    args: Any
    values: dict[str, str]
    procs: stack.Processes
    run_dir: Path
    tag: str
    log: Callable[[str], None]
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def dns_server(self) -> str:
        return self.values.get("PDNS_DNS_SERVERS", "127.0.0.1:5353").split(",")[0]

    @property
    def broker_url(self) -> str:
        return self.values.get("DRAMATIQ_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


def run_all(ctx: Context) -> list[Row]:
    """The parts in order, on a Pebble of the bench's own, watching the machine's load."""
    rows: list[Row] = []
    removed = requests_reset()
    ctx.log(f"bench database emptied ({removed} requests of earlier runs)")
    pebble = stack.PrivatePebble(ctx.procs, "pebble", *stack.PEBBLE_PORTS,
                                 {"PEBBLE_VA_NOSLEEP": "1"}, ctx.values["ACME_TLS_CA"],
                                 ctx.dns_server)
    load = stack.LoadMonitor(ctx.procs)
    load.start()
    try:
        with pebble:
            load.mark("1 issuance")
            rows += part_issuance(ctx, pebble)
            if ctx.args.waiting:
                from bench.waiting import part_waiting

                load.mark("2 waiting")
                rows += part_waiting(ctx)
            if ctx.args.api_seconds:
                from bench.api_load import part_api

                load.mark("3 API")
                rows += part_api(ctx)
            if ctx.args.cost_batch:
                from bench.cost import part_cost

                load.mark("4 cost")
                rows += part_cost(ctx, pebble)
            load.mark("end")
    finally:
        load.stop()
    parts = load.per_part()[1:]
    ctx.facts["foreign_load"] = parts
    rows.append(Row("machine", "CPU taken by Python processes the bench did not start",
                    ", ".join(f"part {label.split()[0]}: {cores:.2f}" for label, cores in parts)
                    + " cores", f"of {_cores()} cores", "", "informative: ~0 on an idle machine"))
    return rows


# --- part 1 ------------------------------------------------------------------------------

def service_processes(ctx: Context, env: dict[str, str] | None = None
                      ) -> tuple[stack.Proc, stack.Proc]:
    """gunicorn and the workers on the bench queue, as configured by the flags."""
    env = env or stack.service_env()
    web = stack.start_web(ctx.procs, env, ctx.args.web_workers, ctx.args.web_threads)
    worker = stack.start_worker(ctx.procs, env, ctx.args.worker_processes,
                                ctx.args.worker_threads)
    return web, worker


def _failed(batch: Batch | FloorResult) -> str:
    errors = len(batch.errors) if isinstance(batch, Batch) else batch.errors
    return f" ({errors} FAILED)" if errors else ""


def issuing_account(ctx: Context, pebble: stack.PrivatePebble) -> None:
    """A fresh default ACME account of the service at this Pebble (after every start)."""
    ctx.facts["accounts"] = ctx.facts.get("accounts", 0) + 1
    account_make_default(f"bench-{ctx.tag}-{pebble.name}-{ctx.facts['accounts']}",
                         pebble.directory, ctx.values["ACME_TLS_CA"])


SAFE_FLOOR_CONCURRENCY = 25  # Pebble 2.4 has not deadlocked here below this


def issue(ctx: Context, pebble: stack.PrivatePebble, label: str, names: list[str],
          concurrency: int, **options: Any) -> Batch:
    """A service batch; when its Pebble deadlocks, end it, restart Pebble and run it once
    more with fresh names (the figures of an aborted batch mean nothing)."""
    for attempt in (1, 2):
        cpu0 = stack.cpu_by_role(ctx.procs)
        batch = service_batch(label, stack.base_url(), ctx.facts["token"], names, concurrency,
                              pebble.root, ca_stuck=pebble.stuck, **options)
        batch.cpu = stack.cpu_delta(stack.cpu_by_role(ctx.procs), cpu0)
        if not batch.aborted:
            return batch
        ctx.facts["pebble_deadlocks"] = ctx.facts.get("pebble_deadlocks", 0) + 1
        ctx.facts.setdefault("service_deadlocks", []).append(label)
        cancelled = requests_cancel(batch.ids)
        ctx.log(f"service {label} (attempt {attempt}): {batch.errors[-1]}; {cancelled} "
                "requests ended, restarting Pebble")
        pebble.restart()
        issuing_account(ctx, pebble)
        names = [f"r{attempt}{name}" for name in names]
    return batch


def floor_run(ctx: Context, pebble: stack.PrivatePebble, n: int, c: int
              ) -> FloorResult | None:
    """The floor client. When Pebble deadlocks under it: restart Pebble, try once more, then
    once at SAFE_FLOOR_CONCURRENCY (its throughput is flat from ~10 in flight on)."""
    values = ctx.values
    attempts = [c, c] if c <= SAFE_FLOOR_CONCURRENCY else [c, c, SAFE_FLOOR_CONCURRENCY]
    for attempt, concurrency in enumerate(attempts, 1):
        env = floor_env(dict(os.environ), pebble.directory, values["ACME_TLS_CA"],
                        values["PDNS_API_URL"], values["PDNS_API_KEY"], str(pebble.root_file))
        cpu0 = stack.cpu_by_role(ctx.procs)
        try:
            floor = floor_batch(n, concurrency, env, timeout=60 + 0.3 * n,
                                ca_stuck=pebble.stuck)
            floor.cpu = stack.cpu_delta(stack.cpu_by_role(ctx.procs), cpu0)
            # its CSRs' RSA keys are made before its clock starts: not part of issuing
            ctx.facts.setdefault("rsa_csr_cpu", rsa_csr_cpu_seconds())
            floor.cpu["client"] -= n * ctx.facts["rsa_csr_cpu"]
            return floor
        except FloorTimeout as exc:
            ctx.facts["pebble_deadlocks"] = ctx.facts.get("pebble_deadlocks", 0) + 1
            ctx.log(f"{exc} (attempt {attempt}): Pebble deadlocked, restarting it")
            pebble.restart()
            issuing_account(ctx, pebble)
    return None


def part_issuance(ctx: Context, pebble: stack.PrivatePebble) -> list[Row]:
    """Service vs floor at each NxC of the matrix, then lego one by one."""
    args = ctx.args
    zone = product_ensure("issue")
    ctx.facts["token"] = token_create("issue")
    issuing_account(ctx, pebble)
    web, worker = service_processes(ctx)
    rows: list[Row] = []
    sequential: Batch | None = None
    try:
        # every worker thread opens its database, PowerDNS and CA connections once
        threads = args.worker_processes * args.worker_threads
        warm = issue(ctx, pebble, "warm-up", [f"w{ctx.tag}-{i}.{zone}" for i in range(2 * threads)],
                     threads)
        if warm.errors:
            raise stack.BenchError(f"warm-up certificate failed: {warm.errors}")
        for n, c in args.matrix:
            svc, floor = _best_of_rounds(ctx, pebble, zone, n, c)
            ctx.facts.setdefault("issuance", []).append((n, c, svc, floor))
            ctx.facts.setdefault("cpu", []).append((n, c, svc.cpu, floor.cpu if floor else {}))
            if c == 1 and (sequential is None or n > sequential.n):
                sequential = svc
            rows += _issuance_rows(ctx, n, c, svc, floor)
    finally:
        ctx.procs.stop(worker)
        ctx.procs.stop(web)
    rows += _cpu_rows(ctx)
    if args.lego and sequential is not None:
        rows.append(_lego_row(ctx, pebble, sequential))
    return rows


def _best_of_rounds(ctx: Context, pebble: stack.PrivatePebble, zone: str, n: int, c: int
                    ) -> tuple[Batch, FloorResult | None]:
    """Service and floor ``--rounds`` times each, taking turns at going first, and the
    fastest round of each: the machine is shared, and a neighbour's load only ever slows a
    round down, so the best round of each is the fairest pair to compare."""
    services: list[Batch] = []
    floors: list[FloorResult | None] = []
    for round_no in range(ctx.args.rounds):
        service_first = round_no % 2 == 0
        for turn in ((True, False) if service_first else (False, True)):
            if turn:
                names = [f"s{ctx.tag}-{n}x{c}r{round_no}-{i}.{zone}" for i in range(n)]
                svc = issue(ctx, pebble, f"{n}x{c}", names, c)
                for error in svc.errors[:5]:
                    ctx.log(f"  service error: {error}")
                services.append(svc)
            else:
                floors.append(floor_run(ctx, pebble, n, c))
    if len(services) > 1:
        ctx.log(f"  rounds {n}x{c}: service " + " / ".join(f"{b.rate:.1f}" for b in services)
                + " certs/s; floor " + " / ".join(f"{f.rate:.1f}" if f else "-" for f in floors))
    measured = [f for f in floors if f is not None]
    return (max(services, key=lambda b: b.rate),
            max(measured, key=lambda f: f.rate) if measured else None)


def _floor_of(ctx: Context, n: int, c: int) -> FloorResult | None:
    return next(f for n2, c2, _, f in ctx.facts["issuance"] if (n2, c2) == (n, c))


def _cpu_text(cpu: dict[str, float], certs: int) -> tuple[float, str]:
    """Total CPU ms per certificate and its biggest parts."""
    per = {k: 1000 * v / max(certs, 1) for k, v in cpu.items() if k != "other"}
    parts = sorted(((k, v) for k, v in per.items() if v >= 1), key=lambda kv: -kv[1])
    return sum(per.values()), ", ".join(f"{k} {v:.0f}" for k, v in parts)


def _cpu_rows(ctx: Context) -> list[Row]:
    """Where the 2 cores went per certificate, service vs floor, in the biggest run: on a
    CPU-bound machine this ratio is the throughput ratio."""
    rows = []
    for n, c, svc_cpu, floor_cpu in ctx.facts.get("cpu", []):
        svc = next(b for n2, c2, b, _ in ctx.facts["issuance"] if (n2, c2) == (n, c))
        floor = next(f for n2, c2, _, f in ctx.facts["issuance"] if (n2, c2) == (n, c))
        s_total, s_parts = _cpu_text(svc_cpu, svc.ok)
        f_total, f_parts = _cpu_text(floor_cpu, floor.ok if floor else 0)
        ctx.log(f"cpu {n}x{c} ms/cert: service {s_total:.0f} ({s_parts}); floor {f_total:.0f} "
                f"({f_parts}); other processes {svc_cpu.get('other', 0):.1f} / "
                f"{floor_cpu.get('other', 0):.1f} s")
    measured = [item for item in ctx.facts.get("cpu", []) if _floor_of(ctx, *item[:2])]
    if measured:
        n, c, svc_cpu, floor_cpu = max(measured, key=lambda item: (item[0], item[1]))
        svc = next(b for n2, c2, b, _ in ctx.facts["issuance"] if (n2, c2) == (n, c))
        floor = next(f for n2, c2, _, f in ctx.facts["issuance"] if (n2, c2) == (n, c))
        s_total, s_parts = _cpu_text(svc_cpu, svc.ok)
        f_total, f_parts = _cpu_text(floor_cpu, floor.ok if floor else 0)
        rows.append(Row("1 issuance", f"{n} certs, {c} in flight: CPU ms per cert (all "
                        "processes)", f"{s_total:.0f}: {s_parts}",
                        f"floor {f_total:.0f}: {f_parts}",
                        f"{s_total / f_total:.2f}x" if f_total else "n/a",
                        "informative (floor: its RSA CSR keys excluded)"))
    return rows


def _issuance_rows(ctx: Context, n: int, c: int, svc: Batch, floor: FloorResult | None
                   ) -> list[Row]:
    label = f"{n} certs, {c} in flight"
    if floor is None:
        ctx.log(f"issue {n}x{c}: service {svc.rate:.1f}/s p50 {ms(svc.pct(50))}; "
                "floor: Pebble deadlocked at every attempt")
        return [Row("1 issuance", f"{label}: throughput", f"{svc.rate:.2f} certs/s"
                    f"{_failed(svc)}", "floor: Pebble deadlocked", "n/a", ">= 0.50x floor"),
                Row("1 issuance", f"{label}: latency p50 / p95",
                    f"{ms(svc.pct(50))} / {ms(svc.pct(95))}", "floor: Pebble deadlocked",
                    "n/a", "p50 <= floor + 300 ms")]
    ctx.log(f"issue {n}x{c}: service {svc.rate:.1f}/s p50 {ms(svc.pct(50))} "
            f"p95 {ms(svc.pct(95))}{_failed(svc)}; floor {floor.rate:.1f}/s "
            f"p50 {ms(floor.p50)} p95 {ms(floor.p95)}{_failed(floor)}")
    share = svc.rate / floor.rate if floor.rate else 0.0
    gap = svc.pct(50) - floor.p50
    same = floor.concurrency == c
    at = "" if same else f" at {floor.concurrency} in flight (Pebble deadlocked at {c})"
    return [
        Row("1 issuance", f"{label}: throughput", f"{svc.rate:.2f} certs/s{_failed(svc)}",
            f"floor {floor.rate:.2f} certs/s{at}{_failed(floor)}", f"{share:.3f}x",
            ">= 0.50x floor", share >= 0.5 and not svc.errors),
        # latency at another concurrency is not comparable (Little's law): informative then
        Row("1 issuance", f"{label}: latency p50 / p95",
            f"{ms(svc.pct(50))} / {ms(svc.pct(95))}",
            f"floor {ms(floor.p50)} / {ms(floor.p95)}{at}", f"{gap * 1000:+.0f} ms",
            "p50 <= floor + 300 ms" if same else "informative (other concurrency)",
            (gap <= 0.3 and not svc.errors) if same else None),
    ]


def _lego_row(ctx: Context, pebble: stack.PrivatePebble, sequential: Batch) -> Row:
    """lego one certificate at a time, against the service's sequential rate."""
    stack.ensure_packages("lego")
    values = ctx.values
    lenv = lego_env(dict(os.environ), values["ACME_TLS_CA"], values["PDNS_API_URL"],
                    values["PDNS_API_KEY"])
    lego = lego_batch(ctx.args.lego, lenv, pebble.directory, ctx.dns_server, pebble.root,
                      stack.BASE_ZONE, ctx.tag, ctx.log)
    for error in lego.errors:
        ctx.log(f"  lego error: {error}")
    ctx.facts["lego"] = lego
    ctx.log(f"lego: {lego.ok} certs, {lego.rate:.2f}/s, p50 {ms(lego.pct(50))}")
    factor = sequential.rate / lego.rate if lego.rate else math.inf
    return Row("1 issuance", f"one at a time ({sequential.n} certs) vs lego",
               f"{sequential.rate:.2f} certs/s, p50 {ms(sequential.pct(50))}",
               f"lego {lego.rate:.2f} certs/s, p50 {ms(lego.pct(50))}{_failed(lego)}",
               f"{factor:.1f}x", ">= 10x lego", factor >= 10 and lego.ok > 0)


def interpretation(ctx: Context, rows: list[Row], seconds: float) -> str:
    """A few sentences under the table: what held, what did not, where to look."""
    args, facts = ctx.args, ctx.facts
    missed = [r for r in rows if r.met is False and r.part != "machine"]
    out = [f"Run {ctx.tag}, {seconds / 60:.1f} min: {len(missed)} of "
           f"{sum(r.met is not None and r.part != 'machine' for r in rows)} targets missed. "
           f"Workers {args.worker_processes} processes x {args.worker_threads} threads, "
           f"gunicorn {args.web_workers} x {args.web_threads}, on {_cores()} cores shared with "
           "PostgreSQL, RabbitMQ, PowerDNS and the bench's own Pebble."]
    issuance = facts.get("issuance", [])
    if issuance:
        best = max(issuance, key=lambda item: item[2].rate)
        n, c, svc, floor = best
        floor_text = f"the floor did {floor.rate:.1f}/s" if floor else "the floor deadlocked Pebble"
        out.append(f"- Issuance: at best {svc.rate:.1f} certs/s ({n}x{c}) where {floor_text}; "
                   "past that, more in flight only adds latency (Little's law: p50 ~ in "
                   "flight / throughput).")
    measured = [item for item in facts.get("cpu", []) if _floor_of(ctx, *item[:2])]
    if measured:
        n, c, svc_cpu, floor_cpu = max(measured, key=lambda item: (item[0], item[1]))
        svc = next(b for n2, c2, b, _ in issuance if (n2, c2) == (n, c))
        floor = next(f for n2, c2, _, f in issuance if (n2, c2) == (n, c))
        s_total, _ = _cpu_text(svc_cpu, svc.ok)
        f_total, _ = _cpu_text(floor_cpu, floor.ok if floor else 0)
        if s_total and f_total:
            out.append(f"  The machine is CPU-bound: at {n}x{c} the service used {s_total:.0f} ms "
                       f"of CPU per certificate over all processes (the floor {f_total:.0f} ms), "
                       f"which caps it near {1000 * _cores() / s_total:.0f} certs/s on "
                       f"{_cores()} cores (the floor near {1000 * _cores() / f_total:.0f}).")
    if facts.get("pebble_deadlocks"):
        during = facts.get("service_deadlocks", [])
        out.append(f"- Pebble 2.4 deadlocked {facts['pebble_deadlocks']} time(s) (newOrder/"
                   "newAccount hang until it restarts), "
                   + (f"{len(during)} of them under the service ({', '.join(during)}); "
                      if during else "all under the floor client; ")
                   + "each time the bench restarted its own Pebble and ran that batch again "
                   f"(the floor at last with {SAFE_FLOOR_CONCURRENCY} in flight).")
    waiting = facts.get("waiting")
    if waiting:
        batch = waiting["batch"]
        out.append(f"- Waiting: {batch.ok} requests finished at {batch.rate:.1f}/s while the CA "
                   f"slept {waiting['mean_wait']:.1f} s per validation on average; holding a "
                   f"thread per wait would cap that at {waiting['bound']:.1f}/s. Up to "
                   f"{waiting['peak_waiting']} requests waited at once with at most "
                   f"{waiting['peak_leased']} holding a worker.")
    api = facts.get("api")
    if api:
        submit, health = api["submit"]["rate"], api["health"]["rate"]
        out.append(f"- API: {submit:.0f} submissions/s at {api['connections']} connections vs "
                   f"{health:.0f} req/s for /healthz; {api['created']} requests written and "
                   f"{api['queued']} messages queued (no worker; the queue was deleted). "
                   "Beyond a few connections the 2 cores are busy: more in flight only adds "
                   "latency.")
        if api.get("waits"):
            shape, calls, each = api["waits"][0]
            out.append(f"  Under load a submission waited {each:.0f} ms on average in "
                       f"{statement_label(shape)}{' FOR UPDATE' * ('FOR UPDATE' in shape)}"
                       f" ({calls:.0f}x per submission), the longest wait of all.")
    cost = facts.get("cost")
    if cost:
        many = cost["many"]
        inside, ok = many["inside"], max(many["batch"].ok, 1)
        shapes = sorted((k.split(".", 2) for k in inside if ".stmt." in k),
                        key=lambda parts: -inside[".".join(parts)])[:4]
        most = ", ".join(f"{inside['.'.join(parts)] / ok:.0f}x {statement_label(parts[2])}"
                         for parts in shapes)
        out.append(f"- Cost: per certificate {many['total_statements']:.0f} SQL statements, "
                   f"{many['xacts']:.0f} transactions, {many['published']:.0f} broker "
                   f"messages, with {cost['rows_before']} and with {cost['rows_after']} "
                   f"requests in the database; the most frequent: {most}.")
    foreign = [f"part {label.split()[0]} {cores:.2f}" for label, cores in
               facts.get("foreign_load", []) if cores >= 0.1]
    if foreign:
        out.append(f"- Caution: other people's Python processes used CPU during the run "
                   f"({', '.join(foreign)} cores of {_cores()}); those parts read low.")
    out.append("See bench/README.md for how each figure is measured.")
    return "\n".join(out)


def statement_label(shape: str) -> str:
    """``UPDATE signing_certificaterequest (step)`` from a statement's shape."""
    verb = shape.split(" ", 1)[0]
    table = (re.search(r'(?:UPDATE|INTO|FROM) "(\w+)"', shape)
             or re.search(r'"(\w+)"\."', shape) or re.search(r"^\w+ (\w+)", shape))
    column = re.search(r'SET "(\w+)"( = NULL)?', shape) if verb == "UPDATE" else None
    return (f"{verb} {table.group(1) if table else '?'}"
            + (f" ({column.group(1)}{column.group(2) or ''})" if column else ""))


def _cores() -> int:
    return os.cpu_count() or 0
