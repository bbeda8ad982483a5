#!/usr/bin/env python3
# Copy of the team's reference floor client, shared/reference/acme_floor.py: only this
# header was added, the logic is unchanged. The bench runs this copy so that it needs
# nothing from ../shared at run time; refresh it by copying the reference again.
"""acme_floor.py -- minimal, fast ACME dns-01 client floor for the CSR Proxy.

Issues N certificates (unique names n<i>[-<tag>].<zone>) against an RFC 8555 server
(Pebble from stack-up.sh) with certbot's `acme` library, answering dns-01 through
the PowerDNS HTTP API, with a thread pool of C workers; prints per-cert latency
(with a phase breakdown) and total throughput.

Two flows:
  --flow steps (default): the order is driven as discrete, non-blocking steps that
      pass only JSON-serialisable state (URLs, CSR PEM, TXT values) between them,
      round-tripped through json.dumps/loads and a *fresh* ClientV2 per step, i.e.
      exactly what a resumable, DB-backed service would do.  Polls every --poll s.
  --flow lib: the library's blocking helpers (new_order, answer_challenge,
      poll_authorizations, finalize_order) for comparison (1 s polling granularity).

Env defaults come from stack-up.sh's stack.env (ACME_DIRECTORY, ACME_TLS_CA,
PDNS_API_URL, PDNS_API_KEY, PDNS_ZONE, PEBBLE_ROOT).

  . /tmp/csrstack/stack.env && /tmp/acmevenv/bin/python acme_floor.py -n 10 -c 1
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import importlib.metadata
import json
import os
import secrets
import statistics
import sys
import threading
import time

import josepy as jose
import requests
from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# ----------------------------------------------------------------- counters
_lock = threading.Lock()
COUNTS = {"badNonce": 0, "posts": 0}


def bump(key: str, n: int = 1) -> None:
    with _lock:
        COUNTS[key] = COUNTS.get(key, 0) + n


class CountingNetwork(client.ClientNetwork):
    """ClientNetwork that counts POSTs and badNonce rejections. The library itself
    retries a badNonce exactly once (ClientNetwork.post -> _post_once twice); with
    extra_retries > 0 the whole post() is repeated that many more times."""

    extra_retries = 0

    def post(self, *args, **kwargs):
        for attempt in range(self.extra_retries + 1):
            try:
                return super().post(*args, **kwargs)
            except messages.Error as e:
                if e.code != "badNonce" or attempt == self.extra_retries:
                    raise
                bump("badNonce_extra_retry")

    def _post_once(self, *args, **kwargs):
        bump("posts")
        try:
            return super()._post_once(*args, **kwargs)
        except messages.Error as e:
            if e.code == "badNonce":
                bump("badNonce")
            raise


# ----------------------------------------------------------------- helpers
def make_csr(names: list[str]) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0].lstrip("*."))]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


class PowerDNS:
    def __init__(self, url: str, key: str, zone: str):
        self.base = f"{url.rstrip('/')}/api/v1/servers/localhost/zones/{zone}"
        self.local = threading.local()
        self.key = key
        self.serialize = None

    def _s(self) -> requests.Session:
        if not hasattr(self.local, "s"):
            s = requests.Session()
            s.headers.update({"X-API-Key": self.key})
            self.local.s = s
        return self.local.s

    def _patch(self, rrsets: list[dict]) -> None:
        if self.serialize is not None:
            with self.serialize:
                return self._patch_retry(rrsets)
        return self._patch_retry(rrsets)

    def _patch_retry(self, rrsets: list[dict]) -> None:
        # gsqlite3 answers concurrent writes with 500 "database is locked (5)"
        for attempt in range(5):
            r = self._s().patch(self.base, json={"rrsets": rrsets}, timeout=10)
            if r.status_code == 204:
                return
            bump("pdns_retry")
            time.sleep(0.05 * (attempt + 1))
        raise RuntimeError(f"PowerDNS PATCH failed: {r.status_code} {r.text}")

    def set_txt(self, records: dict[str, list[str]]) -> None:
        """records: fqdn-without-dot -> all TXT values wanted there (wildcard + base
        share one name, so both values must be REPLACEd together)."""
        self._patch([
            {"name": name.rstrip(".") + ".", "type": "TXT", "ttl": 1, "changetype": "REPLACE",
             "records": [{"content": f'"{v}"', "disabled": False} for v in values]}
            for name, values in records.items()])

    def delete_txt(self, names) -> None:
        self._patch([{"name": n.rstrip(".") + ".", "type": "TXT", "changetype": "DELETE"}
                     for n in names])


class Ctx:
    """Everything a worker needs; ACME clients are made per thread / per step."""

    def __init__(self, args):
        self.args = args
        CountingNetwork.extra_retries = args.badnonce_retries
        self.key = jose.JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self.verify = args.tls_ca or True
        net = self.net()
        self.directory = client.ClientV2.get_directory(args.directory, net)
        self.new_nonce = self.directory["newNonce"]
        c = client.ClientV2(self.directory, net)
        eab = None
        if args.eab_kid:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=self.key.public_key(), kid=args.eab_kid,
                hmac_key=args.eab_hmac, directory=self.directory)
        self.regr = c.new_account(messages.NewRegistration.from_data(
            email=f"floor@{args.zone.rstrip('.')}", terms_of_service_agreed=True,
            external_account_binding=eab))
        self.account_url = self.regr.uri
        self.dns = PowerDNS(args.pdns_url, args.pdns_key, args.zone)
        if args.dns_lock:
            self.dns.serialize = threading.Lock()
        self.tl = threading.local()
        self.root = None
        if args.root:
            with open(args.root, "rb") as f:
                self.root = x509.load_pem_x509_certificate(f.read())

    def net(self, account=None) -> client.ClientNetwork:
        return CountingNetwork(self.key, account=account, verify_ssl=self.verify,
                               user_agent="csrproxy-acme-floor")

    def fresh_client(self) -> client.ClientV2:
        """A brand-new ClientV2 rebuilt only from persisted facts (account key + URL +
        directory): what a resumed step after a restart would construct."""
        acct = messages.RegistrationResource(uri=self.account_url, body=messages.Registration())
        return client.ClientV2(self.directory, self.net(account=acct))

    def thread_client(self) -> client.ClientV2:
        if not hasattr(self.tl, "c"):
            self.tl.c = self.fresh_client()
        return self.tl.c

    def post_as_get(self, c: client.ClientV2, url: str) -> requests.Response:
        # public equivalent of the private ClientV2._post_as_get(url)
        return c.net.post(url, None, new_nonce_url=self.new_nonce)

    def verify_chain(self, fullchain_pem: str, names: list[str]) -> None:
        certs = x509.load_pem_x509_certificates(fullchain_pem.encode())
        for child, parent in zip(certs, certs[1:]):
            child.verify_directly_issued_by(parent)
        if self.root is not None:
            certs[-1].verify_directly_issued_by(self.root)
        san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names), san


# ----------------------------------------------------------------- step flow
# Each step: (ctx, state:dict) -> state:dict ; state is JSON only.
def step_new_order(ctx: Ctx, st: dict) -> dict:
    c = ctx.fresh_client()
    orderr = c.new_order(st["csr_pem"].encode())  # also POST-as-GETs every authz
    st.update(order_url=orderr.uri, finalize_url=orderr.body.finalize,
              authz_urls=list(orderr.body.authorizations), status=orderr.body.status.name)
    chals, txt = [], {}
    for authzr in orderr.authorizations:
        if authzr.body.status == messages.STATUS_VALID:  # Pebble reuses valid authzs (PEBBLE_AUTHZREUSE)
            bump("authz_reused")
            continue
        challb = next(cb for cb in authzr.body.challenges if isinstance(cb.chall, challenges.DNS01))
        name = challb.chall.validation_domain_name(authzr.body.identifier.value)
        txt.setdefault(name, []).append(challb.chall.validation(ctx.key))
        chals.append({"url": challb.uri, "authz_url": authzr.uri})
    st.update(challenges=chals, txt=txt)
    return st


def step_present(ctx: Ctx, st: dict) -> dict:
    if st["txt"]:
        ctx.dns.set_txt(st["txt"])
    return st


def step_answer(ctx: Ctx, st: dict) -> dict:
    c = ctx.fresh_client()
    for ch in st["challenges"]:
        challb = messages.ChallengeBody(chall=challenges.DNS01(token=b"x" * 16), uri=ch["url"])
        # DNS01Response serialises to {} (keyAuthorization is dropped), so only the URL matters
        c.answer_challenge(challb, challenges.DNS01Response())
    return st


def step_poll_authz(ctx: Ctx, st: dict) -> str:
    """One non-blocking look at every authz: 'pending' | 'valid' | raises."""
    c = ctx.thread_client()
    for url in st["authz_urls"]:
        a = messages.Authorization.from_json(ctx.post_as_get(c, url).json())
        if a.status == messages.STATUS_INVALID:
            errs = [str(cb.error) for cb in a.challenges if cb.error]
            raise RuntimeError(f"authz invalid {url}: {errs}")
        if a.status != messages.STATUS_VALID:
            return "pending"
    return "valid"


def step_finalize(ctx: Ctx, st: dict) -> dict:
    c = ctx.fresh_client()
    orderr = messages.OrderResource(
        uri=st["order_url"], csr_pem=st["csr_pem"].encode(),
        body=messages.Order(finalize=st["finalize_url"], authorizations=tuple(st["authz_urls"])))
    orderr = c.begin_finalization(orderr)  # Pebble 2.4 answers status "processing"
    st["status"] = orderr.body.status.name
    return st


def step_poll_order(ctx: Ctx, st: dict) -> dict:
    """One non-blocking look at the order; downloads the chain once valid."""
    c = ctx.thread_client()
    body = messages.Order.from_json(ctx.post_as_get(c, st["order_url"]).json())
    st["status"] = body.status.name
    if body.status == messages.STATUS_INVALID:
        raise RuntimeError(f"order invalid: {body.error}")
    if body.status == messages.STATUS_VALID and body.certificate:
        st["fullchain_pem"] = ctx.post_as_get(c, body.certificate).text
    return st


def step_cleanup(ctx: Ctx, st: dict) -> dict:
    if st.get("txt"):
        ctx.dns.delete_txt(st["txt"].keys())
    return st


def persist(st: dict) -> dict:
    return json.loads(json.dumps(st))  # prove the state is plain JSON


def issue_steps(ctx: Ctx, names: list[str], csr_pem: bytes) -> tuple[dict, dict]:
    poll, deadline = ctx.args.poll, time.monotonic() + ctx.args.timeout
    ph, t = {}, time.monotonic()

    def mark(k):
        nonlocal t
        now = time.monotonic()
        ph[k] = now - t
        t = now

    st = {"names": names, "csr_pem": csr_pem.decode()}
    try:
        st = persist(step_new_order(ctx, st)); mark("order")
        st = persist(step_present(ctx, st)); mark("dns")
        st = persist(step_answer(ctx, st)); mark("answer")
        while step_poll_authz(ctx, st) != "valid":
            if time.monotonic() > deadline:
                raise TimeoutError("authz")
            time.sleep(poll)
        mark("validate")
        st = persist(step_finalize(ctx, st))
        while "fullchain_pem" not in st:
            st = persist(step_poll_order(ctx, st))
            if "fullchain_pem" in st:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("order")
            time.sleep(poll)
        mark("finalize")
    finally:
        if "txt" in st:
            step_cleanup(ctx, st)
            mark("cleanup")
    return st, ph


# ----------------------------------------------------------------- library flow
def issue_lib(ctx: Ctx, names: list[str], csr_pem: bytes) -> tuple[dict, dict]:
    c = ctx.thread_client()
    ph, t = {}, time.monotonic()

    def mark(k):
        nonlocal t
        now = time.monotonic()
        ph[k] = now - t
        t = now

    deadline = datetime.datetime.now() + datetime.timedelta(seconds=ctx.args.timeout)
    orderr = c.new_order(csr_pem); mark("order")
    txt, todo = {}, []
    for authzr in orderr.authorizations:
        if authzr.body.status == messages.STATUS_VALID:
            bump("authz_reused")
            continue
        challb = next(cb for cb in authzr.body.challenges if isinstance(cb.chall, challenges.DNS01))
        response, validation = challb.response_and_validation(ctx.key)
        txt.setdefault(challb.chall.validation_domain_name(authzr.body.identifier.value), []).append(validation)
        todo.append((challb, response))
    try:
        if txt:
            ctx.dns.set_txt(txt)
        mark("dns")
        for challb, response in todo:
            c.answer_challenge(challb, response)
        mark("answer")
        c.poll_authorizations(orderr, deadline); mark("validate")
        orderr = c.finalize_order(orderr, deadline); mark("finalize")
    finally:
        if txt:
            ctx.dns.delete_txt(txt.keys())
            mark("cleanup")
    return {"fullchain_pem": orderr.fullchain_pem, "txt": txt}, ph


# ----------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10, help="certificates to issue")
    ap.add_argument("-c", "--concurrency", type=int, default=1)
    ap.add_argument("--flow", choices=["steps", "lib"], default="steps")
    ap.add_argument("--poll", type=float, default=0.2, help="poll interval (s) in --flow steps")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--badnonce-retries", type=int, default=0,
                    help="extra whole-request retries on badNonce beyond the library's single one")
    ap.add_argument("--dns-lock", action="store_true", help="serialise PowerDNS API writes in-process")
    ap.add_argument("--wildcard", action="store_true", help="CSRs for *.n<i> + n<i>")
    ap.add_argument("--tag", default=None, help="name suffix (default random; '' -> n<i>.<zone>)")
    ap.add_argument("--directory", default=os.environ.get("ACME_DIRECTORY", "https://127.0.0.1:14000/dir"))
    ap.add_argument("--tls-ca", default=os.environ.get("ACME_TLS_CA"), help="CA of the ACME server's TLS cert")
    ap.add_argument("--root", default=os.environ.get("PEBBLE_ROOT"), help="issuing root to verify against")
    ap.add_argument("--pdns-url", default=os.environ.get("PDNS_API_URL", "http://127.0.0.1:8081"))
    ap.add_argument("--pdns-key", default=os.environ.get("PDNS_API_KEY", "secret"))
    ap.add_argument("--zone", default=os.environ.get("PDNS_ZONE", "csrproxy.test."))
    ap.add_argument("--eab-kid", default=None, help="External Account Binding key id (e.g. kid-1)")
    ap.add_argument("--eab-hmac", default=os.environ.get("PEBBLE_EAB_HMAC"), help="EAB HMAC key, base64url")
    ap.add_argument("--out", default=None, help="write fullchains here")
    ap.add_argument("--versions", action="store_true", help="print library versions/signatures and exit")
    args = ap.parse_args()

    print(f"acme {importlib.metadata.version('acme')} josepy {importlib.metadata.version('josepy')} "
          f"cryptography {importlib.metadata.version('cryptography')} requests {requests.__version__}")
    if args.versions:
        import inspect
        for m in ("new_account", "new_order", "answer_challenge", "poll", "poll_authorizations",
                  "begin_finalization", "poll_finalization", "finalize_order", "poll_and_finalize",
                  "renewal_time", "revoke"):
            print(f"  ClientV2.{m}{inspect.signature(getattr(client.ClientV2, m))}")
        return 0

    zone = args.zone.rstrip(".")
    tag = secrets.token_hex(3) if args.tag is None else args.tag
    suffix = f"-{tag}" if tag else ""
    jobs = []
    for i in range(1, args.n + 1):
        base = f"n{i}{suffix}.{zone}"
        names = [f"*.{base}", base] if args.wildcard else [base]
        jobs.append((i, names, make_csr(names)))  # CSR creation is not timed (the proxy receives CSRs)

    t_setup = time.monotonic()
    ctx = Ctx(args)
    print(f"account {ctx.account_url} (setup {time.monotonic() - t_setup:.2f}s); flow={args.flow} "
          f"n={args.n} c={args.concurrency} names n<i>{suffix}.{zone}")
    issue = issue_steps if args.flow == "steps" else issue_lib

    def run(job):
        i, names, csr = job
        t0 = time.monotonic()
        try:
            st, ph = issue(ctx, names, csr)
            ctx.verify_chain(st["fullchain_pem"], names)
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                with open(os.path.join(args.out, f"{names[-1]}.fullchain.pem"), "w") as f:
                    f.write(st["fullchain_pem"])
            return i, names, time.monotonic() - t0, ph, None
        except Exception as e:  # report, keep going
            return i, names, time.monotonic() - t0, {}, f"{type(e).__name__}: {e}"

    lat, fails = [], []
    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=args.concurrency) as ex:
        for i, names, dt, ph, err in ex.map(run, jobs):
            phs = " ".join(f"{k}={v:.2f}" for k, v in ph.items())
            if err:
                fails.append((i, err))
                print(f"cert {i:3d} {names[-1]}: FAILED after {dt:.2f}s: {err}")
            else:
                lat.append(dt)
                print(f"cert {i:3d} {names[-1]}: {dt:.3f}s  [{phs}]")
    total = time.monotonic() - t0
    q = sorted(lat)
    if q:
        p95 = q[min(len(q) - 1, int(0.95 * len(q)))]
        print(f"latency s: min {q[0]:.3f} median {statistics.median(q):.3f} p95 {p95:.3f} max {q[-1]:.3f}")
    print(f"counters: {COUNTS}")
    print(f"acme_floor {args.flow}: {len(lat)}/{args.n} ok, {len(fails)} failed, c={args.concurrency}: "
          f"{total:.2f} s total, {total / args.n:.3f} s/cert, {len(lat) / total:.2f} certs/s")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
