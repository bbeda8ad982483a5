"""The bench's own corner of the shared stack: database, queues, ports and processes.

The bench runs beside other people's work on the same PostgreSQL, RabbitMQ, PowerDNS and
Pebble, so everything it starts is its own (database ``csrproxy_bench``, queues
``csrproxy-bench*``, port 8100, Pebbles of its own on 14700 and 14710; other free ports when
those are taken) and everything it starts runs in a process group of its own that
:class:`Processes` stops, even when the bench fails.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
MANAGE = str(ROOT / "manage.py")

BENCH_DB = "csrproxy_bench"
BENCH_DATABASE_URL = f"postgres://csrproxy:csrproxy@127.0.0.1:5432/{BENCH_DB}"
QUEUE = "csrproxy-bench"  # issuance: bench workers consume it
API_QUEUE = "csrproxy-bench-api"  # API capacity: nobody consumes it, deleted afterwards
WEB_PORT = 8100  # preferred; another free port when taken (see choose_ports)
# Preferred ports of the bench's Pebbles (ACME, management): away from 14000-14300, which the
# shared stack and the fault suite use; any free port when taken.
PEBBLE_PORTS = (14700, 15700)  # no validation sleeps, like the shared one
SLEEPY_PEBBLE_PORTS = (14710, 15710)  # sleeps before validating
BASE_ZONE = "csrproxy.test"


class BenchError(RuntimeError):
    """Something the bench needs is missing or did not start; the message says what."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of ``.env`` (what ``make stack`` writes), comments skipped."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def stack_values() -> dict[str, str]:
    """The running stack's settings: the environment wins over ``.env``, as in the service."""
    values = read_env_file(ROOT / ".env")
    values.update({k: v for k, v in os.environ.items() if k in values})
    missing = [k for k in ("PDNS_API_URL", "PDNS_API_KEY", "ACME_TLS_CA") if not values.get(k)]
    if missing:
        raise BenchError(f".env lacks {', '.join(missing)}: run `make stack` first")
    return values


def service_env(queue: str = QUEUE, **extra: str) -> dict[str, str]:
    """Environment of a bench service process: the bench database and a bench queue.

    Real environment variables win over ``.env`` in the service's settings, so setting them
    here is enough to keep every bench process off the shared database and queues.
    """
    env = dict(os.environ)
    env.update(
        DATABASE_URL=BENCH_DATABASE_URL,
        DRAMATIQ_QUEUE=queue,
        DJANGO_SETTINGS_MODULE="csrproxy.settings",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


# --- processes ---------------------------------------------------------------------------

def _pgid_members(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid`` (the bench's own groups only)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:  # fields: state ppid pgrp ...
            members.append(int(entry))
    return sorted(members)


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Proc:
    """One started command and its process group (its children included)."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pgid(self) -> int:
        return self.popen.pid  # started with start_new_session: its pid is the group id

    def members(self) -> list[int]:
        return _pgid_members(self.pgid)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """TERM the whole group, then KILL what is left: never anything outside it."""
        if not self.members():
            self.popen.poll()
            return
        try:
            os.killpg(self.pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.members():
            self.popen.poll()
            time.sleep(0.1)
        if self.members():
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


@dataclass
class Processes:
    """Everything the bench started; :meth:`stop_all` runs on any exit of ``run.py``."""

    log_dir: Path
    started: list[Proc] = field(default_factory=list)
    pgids: set[int] = field(default_factory=lambda: {os.getpgrp()})  # ever ours
    finished: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str],
              cwd: Path = ROOT) -> Proc:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        proc = Proc(name, popen, log_path)
        self.started.append(proc)
        self.pgids.add(popen.pid)
        return proc

    def role(self, pgid: int) -> str | None:
        """What a process group of ours runs: worker, api, pebble (None: not ours)."""
        for proc in self.started + self.finished:
            if proc.pgid == pgid:
                return ("worker" if proc.name.startswith("worker") else
                        "api" if proc.name.startswith("web") else
                        "pebble" if proc.name.startswith("pebble") else proc.name)
        return None

    def stop(self, proc: Proc) -> None:
        self.finished.append(proc)
        proc.stop()
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.started)):
            proc.stop()
        self.started.clear()


def port_free(port: int) -> bool:
    """Nobody listens on it (TIME_WAIT leftovers of our own servers do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(preferred: int) -> int:
    """``preferred`` when nothing uses it, else a port the kernel picks."""
    if port_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def choose_web_port() -> int:
    global WEB_PORT
    WEB_PORT = free_port(WEB_PORT)
    return WEB_PORT


def base_url() -> str:
    return f"http://127.0.0.1:{WEB_PORT}"


def wait_until(what: str, check: Callable[[], bool], timeout: float,
               proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and not proc.alive():
            raise BenchError(f"{what}: {proc.name} exited:\n{proc.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            tail = proc.log_text()[-3000:] if proc else ""
            raise BenchError(f"{what}: not ready after {timeout:.0f} s\n{tail}")
        time.sleep(0.1)


def start_web(procs: Processes, env: dict[str, str], workers: int, threads: int,
              name: str = "web") -> Proc:
    """gunicorn on the bench port, as ``scripts/demo.sh`` runs it (no access log)."""
    if not port_free(WEB_PORT):
        raise BenchError(f"port {WEB_PORT} is taken (it was free when the run started)")
    proc = procs.start(name, [GUNICORN, "csrproxy.wsgi", "--bind", f"127.0.0.1:{WEB_PORT}",
                              "--workers", str(workers), "--threads", str(threads)], env)

    def healthy() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{WEB_PORT}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    wait_until("gunicorn", healthy, 30, proc)
    return proc


def start_worker(procs: Processes, env: dict[str, str], processes: int, threads: int,
                 name: str = "worker") -> Proc:
    """``manage.py run_worker`` (it sets dramatiq_worker_timeout=50 ms) on the bench queue."""
    proc = procs.start(name, [PYTHON, MANAGE, "run_worker", "--processes", str(processes),
                              "--threads", str(threads)], env)
    wait_until("worker", lambda: proc.log_text().count("Worker process is ready for action")
               >= processes, 60, proc)
    return proc


def worker_pids(proc: Proc) -> list[int]:
    """The Dramatiq worker processes (the group minus its supervising main process)."""
    return [pid for pid in proc.members() if pid != proc.popen.pid]


def manage(*args: str, env: dict[str, str]) -> str:
    """Run a management command; its stdout (stderr carries the service's log lines)."""
    done = subprocess.run([PYTHON, MANAGE, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def ensure_database() -> None:
    """Create the bench database (once); :func:`migrate` brings its schema up to date."""
    exists = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc",
         f"select 1 from pg_database where datname = '{BENCH_DB}'"],
        capture_output=True, text=True, timeout=30)
    if exists.returncode != 0:
        raise BenchError(f"cannot reach PostgreSQL as postgres: {exists.stderr.strip()}")
    if exists.stdout.strip() != "1":
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                        f"create database {BENCH_DB} owner csrproxy"],
                       check=True, capture_output=True, timeout=30)


def migrate() -> None:
    manage("migrate", "--noinput", "-v", "0", env=service_env())


class BenchLock:
    """One bench at a time: a run empties the bench tables and deletes the bench queues, so
    a second run would wreck the first. A PostgreSQL advisory lock, held by a connection of
    its own for the whole run, is released even if the bench is killed."""

    KEY = 0x6373_7262  # "csrb"

    def __init__(self) -> None:
        import psycopg

        self.conn = psycopg.connect(BENCH_DATABASE_URL.replace("postgres://", "postgresql://"),
                                    autocommit=True)
        if not self.conn.execute("SELECT pg_try_advisory_lock(%s)", [self.KEY]).fetchone()[0]:
            self.conn.close()
            raise BenchError("another bench run holds the bench database; wait for it to end")

    def release(self) -> None:
        self.conn.close()


def ensure_packages(*packages: str) -> None:
    """apt-get install what is missing (root, Debian), like ``scripts/lib.sh``."""
    missing = [p for p in packages if shutil.which(p) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise BenchError(f"missing {', '.join(missing)} and not root to apt-get install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=False, capture_output=True, env=env, timeout=600)
    still = [p for p in missing if shutil.which(p) is None]
    if still:
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True,
                       timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *still],
                       check=True, capture_output=True, env=env, timeout=600)


# --- RabbitMQ ----------------------------------------------------------------------------

def queues_delete(broker_url: str, *queues: str) -> None:
    """Delete bench queues with their delay (.DQ) and dead-letter (.XQ) companions."""
    import pika  # dramatiq[rabbitmq] brings it

    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        for queue in queues:
            for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
                channel.queue_delete(queue=name)
    finally:
        connection.close()


def queue_depth(broker_url: str, queue: str) -> int:
    """Messages ready in a queue (0 when it does not exist)."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        try:
            return channel.queue_declare(queue=queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return 0
    finally:
        connection.close()


# --- Pebble ------------------------------------------------------------------------------

def pebble_root(mgmt_url: str, tls_ca: str) -> bytes:
    """Pebble makes a new root at every start: fetch the one in force."""
    response = requests.get(f"{mgmt_url}/roots/0", verify=tls_ca, timeout=10)
    response.raise_for_status()
    return response.content


class PrivatePebble:
    """A Pebble of the bench's own, validating dns-01 against the shared PowerDNS.

    The shared Pebble is used by other people's tests at the same time and must never be
    restarted, and Pebble 2.4 can deadlock under load (seen here with 50 concurrent floor
    clients: every newOrder/newAccount then hangs until Pebble restarts). So the bench issues
    against Pebbles it starts itself, with the shared one's configuration and ports moved;
    ``env`` sets the chaos knobs (PEBBLE_VA_NOSLEEP, PEBBLE_VA_SLEEPTIME).
    """

    def __init__(self, procs: Processes, name: str, acme_port: int, mgmt_port: int,
                 env: dict[str, str], tls_ca: str, dns_server: str) -> None:
        self.procs, self.name, self.tls_ca, self.dns_server = procs, name, tls_ca, dns_server
        self.acme_port, self.mgmt_port, self.env = acme_port, mgmt_port, env
        self.proc: Proc | None = None
        self.root = b""
        self.root_file = procs.log_dir / f"{name}-root.pem"
        self.starts = 0

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.acme_port}/dir"

    def start(self) -> None:
        self.acme_port = free_port(self.acme_port)
        self.mgmt_port = free_port(self.mgmt_port)
        config = json.loads((ROOT / ".stack" / "pebble" / "pebble-config.json").read_text())
        config["pebble"]["listenAddress"] = f"127.0.0.1:{self.acme_port}"
        config["pebble"]["managementListenAddress"] = f"127.0.0.1:{self.mgmt_port}"
        workdir = self.procs.log_dir / self.name
        workdir.mkdir(exist_ok=True)
        config_path = workdir / "pebble-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
        env.update(self.env)
        self.proc = self.procs.start(self.name, ["pebble", "-config", str(config_path),
                                                 "-dnsserver", self.dns_server], env,
                                     cwd=workdir)

        def up() -> bool:
            try:
                return requests.get(self.directory, verify=self.tls_ca, timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(self.name, up, 20, self.proc)
        self.root = pebble_root(f"https://127.0.0.1:{self.mgmt_port}", self.tls_ca)
        self.root_file.write_bytes(self.root)
        self.starts += 1

    def stuck(self, timeout: float = 5.0) -> bool:
        """True when Pebble does not answer a newAccount within ``timeout``: its deadlock
        blocks every write to its store, while GET /dir and nonces still answer."""
        import josepy as jose
        from acme import client, messages
        from cryptography.hazmat.primitives.asymmetric import ec

        key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        net = client.ClientNetwork(key, alg=jose.ES256, verify_ssl=self.tls_ca,
                                   user_agent="csrproxy-bench-probe", timeout=timeout)
        try:
            acme = client.ClientV2(client.ClientV2.get_directory(self.directory, net), net)
            acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        except requests.Timeout:
            return True
        except Exception:  # a refusal (badNonce...) is an answer
            return False
        return False

    def stop(self) -> None:
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None

    def restart(self) -> None:
        """A fresh CA: new root, no accounts, no orders (callers register again)."""
        self.stop()
        self.start()

    def __enter__(self) -> PrivatePebble:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LoadMonitor:
    """CPU used by Python processes the bench did not start (someone's tests, a demo).

    The bench shares a 2-core machine with whoever else works on it; this says how much of
    it they took while each part ran, so a figure can be read with that in mind. Sampled
    every ``interval`` s from /proc (processes living less than that are missed).
    """

    def __init__(self, procs: Processes, interval: float = 1.0) -> None:
        self.procs, self.interval = procs, interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.marks: list[tuple[str, float, float]] = []  # (label, monotonic, foreign cpu s)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="load")
        self.ticks = os.sysconf("SC_CLK_TCK")

    def _foreign(self) -> dict[int, float]:
        out = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) in self.procs.pgids or b"python" not in cmdline:
                continue
            out[int(entry)] = (int(fields[11]) + int(fields[12])) / self.ticks
        return out

    def _sample(self) -> None:
        for pid, cpu in self._foreign().items():
            self.first.setdefault(pid, cpu)
            self.last[pid] = cpu

    def used(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self._sample()
        self.thread.start()
        self.mark("start")

    def mark(self, label: str) -> None:
        """Close the previous part at this point and start ``label``."""
        self._sample()
        self.marks.append((label, time.monotonic(), self.used()))

    def per_part(self) -> list[tuple[str, float]]:
        """(part, average cores used by foreign processes during it)."""
        out = []
        for (label, t0, c0), (_, t1, c1) in zip(self.marks, self.marks[1:], strict=False):
            out.append((label, (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0))
        return out

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


STACK_ROLES = {"postgres": "postgres", "pdns_server": "powerdns", "beam.smp": "rabbitmq"}


def cpu_by_role(procs: Processes) -> dict[str, float]:
    """CPU seconds used so far, by who used it: the bench's own processes by role, the
    shared daemons by name, the bench process with its finished children (floor client,
    lego, wrk) as ``client``. Take two and subtract.

    Each process counts its own time plus that of its reaped children, so a process tree's
    sum never goes back when a child exits (PostgreSQL backends come and go with
    connections; the postmaster inherits their time)."""
    t = os.times()
    out = {"client": t.user + t.system + t.children_user + t.children_system}
    ticks = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        ppid, pgid = int(fields[1]), int(fields[2])
        role = procs.role(pgid)
        if role is None and ppid == me:
            continue  # floor, lego, wrk: counted as "client" once reaped
        role = role or STACK_ROLES.get(comm, "other")
        own_and_reaped = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        out[role] = out.get(role, 0.0) + own_and_reaped / ticks
    return out


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
