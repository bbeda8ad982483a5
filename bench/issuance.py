"""Issuing certificates three ways on the same stack: through the service, with the floor
client, with lego. Each returns a :class:`Batch` with throughput and latencies.

Service: a client submits over HTTP with at most ``concurrency`` requests in flight (a
request stays in flight until its chain has been downloaded over HTTP), as installations do.
Completion is noticed by reading the bench database (one query for all outstanding requests)
instead of polling the API per request, so the measuring client does not eat the CPU the
service needs on a 2-core machine; the chain itself is fetched through the API.
"""
from __future__ import annotations

import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from bench.stack import ROOT

FINISHED = ("valid", "invalid")


@dataclass
class Batch:
    """One measured run: ``n`` certificates with at most ``concurrency`` in flight."""

    label: str
    n: int
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful ones
    errors: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # service request ids
    aborted: bool = False  # the CA stopped answering (Pebble deadlock): figures incomplete
    cpu: dict[str, float] = field(default_factory=dict)  # CPU s by process role, if measured

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        """Nearest-rank percentile (the floor client computes its p95 the same way)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        if q == 50:
            return statistics.median(ordered)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def make_csr(name: str) -> bytes:
    """An installation's CSR: a fresh P-256 key, CN and SAN the name (not timed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def rsa_csr_cpu_seconds(samples: int = 16) -> float:
    """CPU one RSA-2048 CSR costs here: the floor client makes one per certificate before
    it starts its clock, so this is taken out of its CPU per certificate."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    started = time.process_time()
    for _ in range(samples):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (x509.CertificateSigningRequestBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x.test")]))
         .sign(key, hashes.SHA256()))
    return (time.process_time() - started) / samples


def chain_verify(chain_pem: str, root_pem: bytes, name: str) -> None:
    """Path-validate the chain to Pebble's root for the name, as a browser would."""
    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    root = x509.load_pem_x509_certificate(root_pem)
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(name))
    verifier.verify(certs[0], certs[1:])


# --- through the service -----------------------------------------------------------------

class CompletionWatcher:
    """Notices finished requests by reading the database every ``interval`` seconds.

    One query per look for all outstanding requests; ``on_done(id, status)`` is called from
    the watcher's thread. ``polls``/``ids_polled`` let the cost measurement subtract the
    watcher's own load from PostgreSQL's counters.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.outstanding: dict[int, Callable[[int, str], None]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.polls = 0
        self.ids_polled = 0
        self.thread = threading.Thread(target=self._run, daemon=True, name="watcher")

    def __enter__(self) -> CompletionWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def watch(self, request_id: int, on_done: Callable[[int, str], None]) -> None:
        with self.lock:
            self.outstanding[request_id] = on_done

    def query(self, ids: list[int]) -> list[tuple[int, str]]:
        """(id, status) of the requests among ``ids`` that are finished."""
        from signing.models import CertificateRequest

        return list(CertificateRequest.objects.filter(pk__in=ids, status__in=FINISHED)
                    .values_list("pk", "status"))

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self.stopping.is_set():
                with self.lock:
                    ids = list(self.outstanding)
                if ids:
                    self.polls += 1
                    self.ids_polled += len(ids)
                    for pk, status in self.query(ids):
                        with self.lock:
                            on_done = self.outstanding.pop(pk)
                        on_done(pk, status)
                self.stopping.wait(self.interval)
        finally:
            connection.close()


def service_batch(label: str, base_url: str, token: str, names: list[str], concurrency: int,
                  root_pem: bytes, *, poll: float = 0.02, timeout: float = 120.0,
                  submitters: int = 16, fetchers: int = 8,
                  watcher: CompletionWatcher | None = None,
                  ca_stuck: Callable[[], bool] | None = None) -> Batch:
    """Issue one certificate per name through the HTTP API; latency is from just before the
    POST to the chain in hand. Chains are verified against Pebble's root afterwards.

    When nothing finishes for 10 s, ``ca_stuck`` (if given) is asked every 5 s whether the
    CA still answers; a deadlocked Pebble ends the batch at once (``aborted``)."""
    csrs = [make_csr(name) for name in names]
    batch = Batch(label, len(names), concurrency)
    slots = threading.Semaphore(concurrency)
    jobs: queue.Queue[int] = queue.Queue()
    for i in range(len(names)):
        jobs.put(i)
    ready: queue.Queue[tuple[int, int, str, float] | None] = queue.Queue()
    chains: dict[int, str] = {}
    finished_at: list[float] = []
    lock = threading.Lock()
    local = threading.local()

    def session() -> requests.Session:
        """This thread's keep-alive session. gunicorn closes a connection idle for 2 s,
        and a request sent just as it does so fails: after 1 s idle, reconnect first."""
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.headers["Authorization"] = f"Bearer {token}"
            local.used = 0.0
        now = time.monotonic()
        if now - local.used > 1.0:
            local.s.close()  # drops the pooled connections; the session stays usable
        local.used = now
        return local.s

    own_watcher = watcher is None
    watch = watcher or CompletionWatcher(poll)

    def settle(message: str | None, i: int = -1, chain: str = "", latency: float = 0.0) -> None:
        with lock:
            if message is None:
                chains[i] = chain
                batch.latencies.append(latency)
            else:
                batch.errors.append(message)
            finished_at.append(time.monotonic())
        slots.release()

    def submit_loop() -> None:
        while True:
            slots.acquire()
            try:
                i = jobs.get_nowait()
            except queue.Empty:
                slots.release()
                return
            started = time.monotonic()
            try:
                response = session().post(f"{base_url}/api/v1/certificates/",
                                          json={"csr": csrs[i].decode()}, timeout=60)
            except requests.RequestException as exc:
                settle(f"{names[i]}: POST failed: {type(exc).__name__}")
                continue
            if response.status_code != 202:
                settle(f"{names[i]}: POST answered {response.status_code} "
                       f"{response.text[:200]}")
                continue
            request_id = response.json()["id"]
            with lock:
                batch.ids.append(request_id)
            watch.watch(request_id, lambda pk, status, i=i, started=started:
                        ready.put((i, pk, status, started)))

    def fetch_loop() -> None:
        while (item := ready.get()) is not None:
            i, request_id, status, started = item
            if status != "valid":
                settle(f"{names[i]}: request {request_id} ended {status}")
                continue
            try:
                response = session().get(f"{base_url}/api/v1/certificates/{request_id}/chain",
                                          timeout=60)
            except requests.RequestException as exc:
                settle(f"{names[i]}: chain GET failed: {type(exc).__name__}")
                continue
            if response.status_code != 200:
                settle(f"{names[i]}: chain GET answered {response.status_code}")
                continue
            settle(None, i, response.text, time.monotonic() - started)

    t0 = time.monotonic()
    if own_watcher:
        watch.__enter__()
    try:
        fetch_threads = [threading.Thread(target=fetch_loop, daemon=True)
                         for _ in range(max(1, min(fetchers, concurrency)))]
        submit_threads = [threading.Thread(target=submit_loop, daemon=True)
                          for _ in range(max(1, min(submitters, concurrency)))]
        for thread in fetch_threads + submit_threads:
            thread.start()
        deadline = time.monotonic() + timeout
        progress, progress_at, next_probe = 0, time.monotonic(), 0.0
        while len(finished_at) < len(names) and time.monotonic() < deadline:
            time.sleep(0.01)
            now = time.monotonic()
            if len(finished_at) != progress:
                progress, progress_at = len(finished_at), now
            elif ca_stuck is not None and now - progress_at > 10 and now >= next_probe:
                if ca_stuck():
                    batch.aborted = True
                    batch.errors.append(f"the CA stopped answering after {len(finished_at)} "
                                        "requests (Pebble deadlock)")
                    break
                next_probe = time.monotonic() + 5
        if len(finished_at) < len(names) and not batch.aborted:
            batch.errors.append(f"{len(names) - len(finished_at)} requests not finished "
                                f"after {timeout:.0f} s")
        for _ in fetch_threads:
            ready.put(None)
        for thread in fetch_threads:
            thread.join(timeout=30)
    finally:
        if own_watcher:
            watch.__exit__(None, None, None)
    batch.seconds = (max(finished_at) if finished_at else time.monotonic()) - t0
    for i, chain in chains.items():
        try:
            chain_verify(chain, root_pem, names[i])
        except Exception as exc:  # report, never crash the bench on one bad chain
            batch.errors.append(f"{names[i]}: chain does not verify: {exc}")
    return batch


# --- the floor client --------------------------------------------------------------------

FLOOR = ROOT / "bench" / "acme_floor.py"
_FLOOR_LAT = re.compile(r"latency s: min ([\d.]+) median ([\d.]+) p95 ([\d.]+) max ([\d.]+)")
_FLOOR_SUM = re.compile(r"acme_floor steps: (\d+)/(\d+) ok, (\d+) failed, c=(\d+): "
                        r"([\d.]+) s total, [\d.]+ s/cert, ([\d.]+) certs/s")


@dataclass
class FloorResult:
    n: int
    concurrency: int
    ok: int
    seconds: float
    rate: float
    p50: float
    p95: float
    output: str
    cpu: dict[str, float] = field(default_factory=dict)  # CPU s by process role, if measured

    @property
    def errors(self) -> int:
        return self.n - self.ok


class FloorTimeout(RuntimeError):
    """The floor client did not finish in time: Pebble stopped answering."""


def floor_batch(n: int, concurrency: int, env: dict[str, str], timeout: float,
                ca_stuck: Callable[[], bool]) -> FloorResult:
    """``acme_floor.py --flow steps``: the fastest plain client of this CA, same stack.

    Pebble 2.4 can deadlock under this client's load, and the client then waits 45 s per
    request: after a grace period ``ca_stuck`` is asked every few seconds, and a stuck CA
    ends the run at once (FloorTimeout) instead of after ``timeout``."""
    with tempfile.TemporaryFile("w+") as out_file:
        proc = subprocess.Popen([sys.executable, str(FLOOR), "--flow", "steps", "-n", str(n),
                                 "-c", str(concurrency)], cwd=ROOT, env=env, text=True,
                                stdout=out_file, stderr=subprocess.STDOUT)
        started = time.monotonic()
        grace = 10 + 0.06 * n  # its RSA keys come first (~45 ms each here)
        next_probe = started + grace
        try:
            while proc.poll() is None:
                try:
                    proc.wait(timeout=1)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if now - started > timeout:
                    raise FloorTimeout(f"floor {n}x{concurrency} not done after {timeout:.0f} s")
                if now >= next_probe:
                    if ca_stuck():
                        raise FloorTimeout(f"floor {n}x{concurrency}: Pebble stopped answering "
                                           f"after {now - started:.0f} s")
                    next_probe = time.monotonic() + 3
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out_file.seek(0)
        out = out_file.read()
    summary = _FLOOR_SUM.search(out)
    if summary is None:
        raise RuntimeError(f"floor client failed:\n{out[-3000:]}")
    latency = _FLOOR_LAT.search(out)
    ok = int(summary.group(1))
    return FloorResult(n=n, concurrency=concurrency, ok=ok, seconds=float(summary.group(5)),
                       rate=ok / float(summary.group(5)),
                       p50=float(latency.group(2)) if latency else float("nan"),
                       p95=float(latency.group(3)) if latency else float("nan"), output=out)


# --- lego ----------------------------------------------------------------------------------

def lego_batch(n: int, env: dict[str, str], directory: str, dns_server: str, root_pem: bytes,
               zone: str, tag: str, log: Callable[[str], None]) -> Batch:
    """lego (dns-01 through the PowerDNS API) one certificate after another.

    One untimed certificate first registers lego's account: the service and the floor
    client also start with a registered account. Every chain is verified against the root.
    """
    batch = Batch("lego", n, 1)
    work = Path(tempfile.mkdtemp(prefix="bench-lego-"))
    try:
        for i in range(n + 1):
            name = f"l{tag}-{i}.{zone}"
            csr_path = work / f"{i}.csr"
            csr_path.write_bytes(make_csr(name))
            argv = ["lego", "--path", str(work / ".lego"), "--server", directory,
                    "--email", f"bench@{zone}", "--accept-tos", "--dns", "pdns",
                    "--dns.resolvers", dns_server, "--dns.disable-cp",
                    "--csr", str(csr_path), "run"]
            started = time.monotonic()
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
            elapsed = time.monotonic() - started
            if done.returncode != 0:
                batch.errors.append(f"{name}: lego failed: {done.stderr[-500:]}")
                continue
            chain = (work / ".lego" / "certificates" / f"{name}.crt").read_text()
            try:
                chain_verify(chain, root_pem, name)
            except Exception as exc:
                batch.errors.append(f"{name}: chain does not verify: {exc}")
                continue
            if i == 0:
                log(f"lego account registered and first certificate in {elapsed:.1f} s "
                    "(untimed warm-up)")
                continue
            batch.latencies.append(elapsed)
            batch.seconds += elapsed
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return batch


def floor_env(base: dict[str, str], directory: str, tls_ca: str, pdns_url: str, pdns_key: str,
              root_file: str) -> dict[str, str]:
    """What acme_floor.py reads from the environment (stack-up.sh's names)."""
    return {**base, "ACME_DIRECTORY": directory, "ACME_TLS_CA": tls_ca,
            "PDNS_API_URL": pdns_url, "PDNS_API_KEY": pdns_key, "PDNS_ZONE": "csrproxy.test.",
            "PEBBLE_ROOT": root_file}


def lego_env(base: dict[str, str], tls_ca: str, pdns_url: str, pdns_key: str) -> dict[str, str]:
    """lego's pdns provider: no fixed 2 s sleeps, a short propagation timeout."""
    env = {k: v for k, v in base.items() if not k.startswith(("PDNS_", "LEGO_"))}
    env.update(PDNS_API_URL=pdns_url, PDNS_API_KEY=pdns_key, PDNS_PROPAGATION_TIMEOUT="10",
               PDNS_POLLING_INTERVAL="0", LEGO_CA_CERTIFICATES=tls_ca)
    return env

