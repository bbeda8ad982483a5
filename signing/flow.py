"""The ACME flow of one request as resumable steps whose state lives in PostgreSQL.

:func:`request_advance` runs a request's steps one after another until it has to wait for
the CA or DNS; it then stores when to look again (``next_attempt_at``) and returns the wait,
so no worker thread is ever held by a waiting request. A run holds the request's lease and
writes the request at every step change; a step whose side effect must not be repeated
blindly writes its intent first (answering a challenge), or asks the CA what was done
(finalize). So a crash or a redelivered message resumes at the right step.
"""
from __future__ import annotations

import copy
import logging
import os
import random
import signal
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dns_provisioning import services as dns
from dns_provisioning.powerdns import PowerDnsError

from . import acme_ca
from .accounts import account_access, account_for_product
from .budget import OverBudget, budget_admit
from .certificates import ChainMismatch, chain_check
from .models import Certificate, CertificateRequest, RequestEvent

log = logging.getLogger(__name__)
Step = CertificateRequest.Step
Status = CertificateRequest.Status

MAX_STEPS_PER_RUN = 20
# Short polls first (Pebble and most CAs validate within a second), then back off.
POLL_DELAYS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0)
REPUBLISH_AFTER_POLLS = 12  # DNS not visible after this many looks: write the RRset again


@dataclass(frozen=True)
class Wait:
    """Look at the same step again in ``seconds``.

    ``note``: why, for the request's history (empty: a plain poll, not worth a line)."""

    seconds: float
    note: str = ""


@dataclass(frozen=True)
class Go:
    """Run ``step`` at once, with a line for the request's history."""

    step: CertificateRequest.Step
    note: str


class LeaseLost(Exception):
    """The request's row no longer carries this run's lease (it ran out during a slow call
    and another worker claimed the request): this run stops and writes nothing more."""


class Failed(Exception):
    """The request cannot succeed: end it `invalid` with this problem document."""

    def __init__(self, problem: dict) -> None:
        super().__init__(problem.get("detail", ""))
        self.problem = problem


def _poll_delay(req: CertificateRequest) -> float:
    return POLL_DELAYS[min(req.polls, len(POLL_DELAYS) - 1)]


def _problem(kind: str, detail: str) -> dict:
    return {"type": f"urn:csrproxy:problem:{kind}", "detail": detail}


# --- steps -------------------------------------------------------------------------------
# Each returns the next step (run at once: a Step, or a Go with a note) or a Wait (run again
# later), or raises Failed. A step changes ``req`` in memory; the runner saves the request
# at every step change and every wait (see _Run). A step writes the request on its own only
# for an intent that must be durable before a side effect (see step_answer); other rows
# (the budget's stamp, the certificate, TXT records) are written where they are made.

def step_order(req: CertificateRequest) -> Step | Wait:
    if req.acme_account_id is None:
        # Chosen once: if the product moves to another CA, this request still finishes here.
        req.acme_account = account_for_product(req.product)
    if req.order_started_at is None:
        over = budget_admit(req)
        if over is not None:
            return _over_budget(req, over)
    order = acme_ca.order_create(account_access(req.acme_account), req.csr_pem.encode())
    if order.status == "invalid":
        raise Failed(order.error or _problem("order-invalid", "The CA refused the order."))
    req.order_url, req.finalize_url = order.url, order.finalize_url
    req.authorizations = [
        {"url": a.url, "identifier": a.identifier, "wildcard": a.wildcard, "status": a.status,
         "challenge_url": a.challenge_url, "txt_name": a.txt_name, "txt_value": a.txt_value}
        for a in order.authorizations
    ]
    missing = [a for a in order.authorizations if a.status == "pending" and not a.challenge_url]
    if missing:
        raise Failed(_problem("no-dns-challenge",
                              f"The CA offers no dns-01 challenge for {missing[0].identifier}."))
    return Step.PUBLISH if _pending_authzs(req) else Step.FINALIZE


def _over_budget(req: CertificateRequest, over: OverBudget) -> Wait:
    """Hold the request (``pending``, with its expected time) or refuse it, per the budget."""
    if over.refuse:
        raise Failed(_problem("ca-budget-exceeded",
                              f"The CA's limit of {over.rule} is reached until "
                              f"{over.until:%Y-%m-%d %H:%M:%S} UTC; not sent to the CA."))
    seconds = max(1.0, (over.until - timezone.now()).total_seconds())
    req.status = Status.PENDING
    # The wait is the operator's choice, not a failure: the deadline moves with it.
    req.deadline_at = max(req.deadline_at,
                          over.until + timedelta(seconds=settings.SIGNING_DEADLINE_SECONDS))
    return Wait(seconds, note=f"waiting for the CA budget ({over.rule}) until "
                              f"{over.until:%Y-%m-%d %H:%M:%S}")


def _pending_authzs(req: CertificateRequest) -> list[dict]:
    return [a for a in req.authorizations if a["status"] == "pending"]


def step_publish(req: CertificateRequest) -> Step | Wait:
    dns.txt_publish(
        owner=req.owner_ref,
        product_zone=req.product.zone,
        values=[(a["txt_name"], a["txt_value"]) for a in _pending_authzs(req)],
    )
    return Step.VERIFY


def step_verify(req: CertificateRequest) -> Step | Wait:
    # Never trust the API's 204: the CA will ask the authoritative server.
    if dns.txt_served(owner=req.owner_ref):
        return Step.ANSWER
    if req.polls and req.polls % REPUBLISH_AFTER_POLLS == 0:
        return Step.PUBLISH
    return Wait(_poll_delay(req))


def step_answer(req: CertificateRequest) -> Step | Wait:
    account = account_access(req.acme_account)
    for authz in _pending_authzs(req):
        if authz.get("answered"):
            continue
        if authz.get("answering"):
            # We may have answered before a crash: ask the CA instead of answering twice.
            current = acme_ca.authorization_fetch(account, authz["url"])
            if current.challenge_status != "pending" or current.status != "pending":
                authz["answered"] = True
                continue
        # Intent first, durable before the CA hears of it (see "answering" above).
        authz["answering"] = True
        _request_write(req, ["authorizations"])
        acme_ca.challenge_answer(account, authz["challenge_url"])
        authz["answered"] = True
    # Look at once: most CAs have validated by now, and validate backs off if not.
    return Step.VALIDATE


def step_validate(req: CertificateRequest) -> Step | Wait:
    account = account_access(req.acme_account)
    waiting = False
    for authz in _pending_authzs(req):
        current = acme_ca.authorization_fetch(account, authz["url"])
        if current.status == "valid":
            authz["status"] = "valid"
            continue
        if current.status != "pending" or current.challenge_status == "invalid":
            # Read the authorization itself: some CAs (acme2certifier) fail a challenge
            # without an error and leave the order pending, never invalid.
            raise Failed(current.error or _problem(
                "authorization-invalid",
                f"The CA did not validate {current.identifier} (authorization {current.status},"
                f" challenge {current.challenge_status or 'missing'})."))
        waiting = True
    return Wait(_poll_delay(req)) if waiting else Step.FINALIZE


def step_finalize(req: CertificateRequest) -> Step | Wait:
    account = account_access(req.acme_account)
    try:
        order = acme_ca.order_finalize(account, req.order_url, req.finalize_url,
                                       req.csr_pem.encode())
    except acme_ca.CaError as exc:
        if exc.code != "orderNotReady":
            raise
        # Finalized before a crash (never finalize twice), or not ready: ask the order.
        order = acme_ca.order_fetch(account, req.order_url)
        if order.status == "ready":
            raise acme_ca.CaError(exc.problem, retry_after=exc.retry_after) from None
    if order.status == "invalid":
        raise Failed(order.error or _problem("order-invalid", "The CA invalidated the order."))
    if order.status == "pending":
        return Step.VALIDATE
    # Some CAs issue at once: the certificate's URL then saves download a look at the order.
    req.certificate_url = order.certificate_url
    return Step.DOWNLOAD  # download looks at once and backs off while still processing


def step_download(req: CertificateRequest) -> Go | Wait:
    account = account_access(req.acme_account)
    if not req.certificate_url:
        order = acme_ca.order_fetch(account, req.order_url)
        if order.status == "invalid":
            raise Failed(order.error or _problem("order-invalid", "The CA invalidated the order."))
        if order.status != "valid" or not order.certificate_url:
            return Wait(_poll_delay(req))
        req.certificate_url = order.certificate_url
    chain = acme_ca.certificate_download(account, req.certificate_url)
    try:
        facts = chain_check(chain, public_key_sha256=req.public_key_sha256, names=req.names)
    except ChainMismatch as exc:
        raise Failed(_problem("certificate-mismatch", str(exc))) from None
    # Stored before the request says valid; a second run finds it and stores nothing.
    Certificate.objects.get_or_create(request=req, defaults={"chain_pem": chain, **facts})
    return _issued(req, facts["serial"])


def _issued(req: CertificateRequest, serial: str) -> Go:
    req.status = Status.VALID
    req.finished_at = timezone.now()
    return Go(Step.CLEANUP, f"certificate issued, serial {serial}")


def _past_deadline(req: CertificateRequest) -> Go:
    """A request past its deadline fails, unless download had stored its certificate before
    a crash: that one is delivered without asking the CA again."""
    stored = (Certificate.objects.filter(request=req).only("serial").first()
              if req.step == Step.DOWNLOAD else None)
    if stored is None:
        raise Failed(_problem("deadline-exceeded",
                              f"Not issued within {settings.SIGNING_DEADLINE_SECONDS} s "
                              f"(stopped at step {req.step})."))
    return _issued(req, stored.serial)


def step_cleanup(req: CertificateRequest) -> Step | Wait:
    dns.txt_withdraw(owner=req.owner_ref)
    return Step.DONE


STEPS = {
    Step.ORDER: step_order,
    Step.PUBLISH: step_publish,
    Step.VERIFY: step_verify,
    Step.ANSWER: step_answer,
    Step.VALIDATE: step_validate,
    Step.FINALIZE: step_finalize,
    Step.DOWNLOAD: step_download,
    Step.CLEANUP: step_cleanup,
}


# --- the runner --------------------------------------------------------------------------

# Every column the flow changes (_request_write adds the lease and updated_at). A run saves
# those that changed since its last save in one UPDATE per step change or wait: the bench
# found the UPDATE of them all the costliest statement of the worker to build.
FLOW_FIELDS = ["status", "step", "polls", "attempts", "error", "finished_at", "deadline_at",
               "acme_account_id", "order_started_at", "order_url", "finalize_url",
               "authorizations", "certificate_url", "next_attempt_at"]


def _flow_values(req: CertificateRequest) -> dict:
    # JSON values are copied: the steps change them in place.
    values = {name: getattr(req, name) for name in FLOW_FIELDS}
    for name in ("authorizations", "error"):
        values[name] = copy.deepcopy(values[name])
    return values


def _request_write(req: CertificateRequest, fields: list[str], *, leaving: bool = False) -> None:
    """Write ``fields`` of the request while this run still holds its lease, and renew the
    lease (or give it back when ``leaving``). ``req.lease_until`` is the lease the run holds.

    A CA call can outlast the lease; another worker may then have claimed the request. The
    conditional UPDATE keeps this run from overwriting what that worker did.
    """
    now = timezone.now()
    lease = None if leaving else now + timedelta(seconds=settings.SIGNING_LEASE_SECONDS)
    written = CertificateRequest.objects.filter(pk=req.pk, lease_until=req.lease_until).update(
        lease_until=lease, updated_at=now, **{name: getattr(req, name) for name in fields})
    if written != 1:
        raise LeaseLost(req.pk)
    if not leaving:
        # Not when leaving: that write may still roll back (see _leave), and the lease the
        # row then keeps is the one the error path gives back.
        req.lease_until = lease


def _claim(request_id: int) -> bool:
    """Take the request's lease; False when another worker holds it or it is not due.

    A conditional UPDATE: whoever changes the row owns the request (a redelivered message
    and the sweeper can never run the same request twice at once).
    """
    now = timezone.now()
    claimed = (
        CertificateRequest.objects.filter(pk=request_id,
                                          next_attempt_at__lte=now + timedelta(seconds=1))
        .exclude(step=Step.DONE)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + timedelta(seconds=settings.SIGNING_LEASE_SECONDS))
    )
    return claimed == 1


def request_advance(request_id: int) -> float | None:
    """Run the request's due steps. Returns seconds until it should run again, or None.

    The lease is given back by the run's last save; only an unexpected exception needs the
    extra write here (the message is then retried).
    """
    if not _claim(request_id):
        return None
    req = CertificateRequest.objects.select_related("product", "acme_account").get(pk=request_id)
    run = _Run(req)
    try:
        return run.advance()
    except LeaseLost:
        log.warning("request %s: its lease ran out during step %s (another worker may have "
                    "claimed it); this run stopped without writing", request_id, req.step)
        return None
    except BaseException:
        try:
            with transaction.atomic():
                _request_write(req, [], leaving=True)
                run.notes_write()
        except Exception:
            # Never hide the first error; the lease then runs out on its own.
            log.exception("request %s: could not give the lease back", request_id)
        raise


class _Run:
    """One worker's turn at a request: its steps until a wait, the end, or a failure.

    Every step change is saved at once (one UPDATE), so a crash resumes at the right step.
    The history lines of the run, each stamped when it happened, are written when the run
    ends (``_leave``: in one transaction with the request, which also gives the lease
    back): one INSERT per run instead of one per line. A worker killed mid-run loses those
    lines, never the request's state.
    """

    def __init__(self, req: CertificateRequest) -> None:
        self.req = req
        self.saved = _flow_values(req)
        self.notes: list[RequestEvent] = []

    def advance(self) -> float | None:
        req = self.req
        if req.status == Status.PENDING:
            req.status = Status.PROCESSING
            self.note("picked up by a worker")
        for _ in range(MAX_STEPS_PER_RUN):
            if req.step == Step.DONE:
                return self._leave(None)
            past_deadline = (req.status not in CertificateRequest.FINISHED
                             and timezone.now() > req.deadline_at)
            try:
                outcome = _past_deadline(req) if past_deadline else STEPS[req.step](req)
            except Failed as failure:
                self._fail(failure.problem)
                continue
            except (acme_ca.CaError, PowerDnsError) as exc:
                return self._after_error(exc)
            if isinstance(outcome, Wait):
                if outcome.note:
                    self.note(outcome.note)
                req.polls += 1
                return self._leave(outcome.seconds)
            if isinstance(outcome, Go):
                self.note(outcome.note)
                outcome = outcome.step
            self._move(outcome)
            self._save()
            if settings.FAILPOINT_KILL_ENTERING_STEP == outcome:
                # The fault suite's crash between two steps: the previous step is committed,
                # the next one not begun. Never set outside tests/faults.
                os.kill(os.getpid(), signal.SIGKILL)
        return self._leave(0)

    def _move(self, step: CertificateRequest.Step) -> None:
        self.req.step, self.req.polls, self.req.attempts = step, 0, 0
        self.note(f"step {step.label.lower()}")

    def _save(self, *, leaving: bool = False) -> None:
        values = _flow_values(self.req)
        _request_write(self.req, [name for name, value in values.items()
                                  if value != self.saved[name]], leaving=leaving)
        self.saved = values

    def _leave(self, wait: float | None) -> float | None:
        """Save, give back the lease and write the run's history: due again in ``wait``
        seconds (None: finished)."""
        if wait is not None:
            self.req.next_attempt_at = timezone.now() + timedelta(seconds=wait)
        with transaction.atomic():
            self._save(leaving=True)
            self.notes_write()
        return wait

    def note(self, message: str) -> None:
        req = self.req
        self.notes.append(RequestEvent(request=req, at=timezone.now(), status=req.status,
                                       step=req.step, message=message))

    def notes_write(self) -> None:
        RequestEvent.objects.bulk_create(self.notes)
        self.notes.clear()

    def _after_error(self, exc: acme_ca.CaError | PowerDnsError) -> float | None:
        req = self.req
        if isinstance(exc, acme_ca.CaError):
            problem, transient, retry_after = exc.problem, exc.transient, exc.retry_after
        else:
            problem = _problem("dns-error", str(exc))
            transient, retry_after = exc.transient, None
        if not transient and req.step != Step.CLEANUP:
            self._fail(problem)
            return self.advance()  # still has its cleanup to do
        req.attempts += 1
        backoff = min(300.0, 2.0 ** req.attempts) * random.uniform(0.8, 1.2)
        wait = max(retry_after or 0.0, backoff)
        kind = str(problem.get("type", "")).rsplit(":", 1)[-1]
        self.note(f"will retry in {wait:.0f} s ({kind}): {problem.get('detail', '')}")
        log.warning("request %s step %s: %s; retry in %.1fs", req.pk, req.step,
                    problem.get("detail") or problem.get("type"), wait)
        return self._leave(wait)

    def _fail(self, problem: dict) -> None:
        req = self.req
        req.status = Status.INVALID
        req.error = problem
        req.finished_at = timezone.now()
        # An order is never needed again, but its TXT values must still go.
        req.step = Step.CLEANUP
        req.polls = req.attempts = 0
        self.note(f"failed: {problem.get('detail') or problem.get('type')}")
        self._save()
        log.info("request %s invalid: %s", req.pk, problem.get("detail") or problem.get("type"))
