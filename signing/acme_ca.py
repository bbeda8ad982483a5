"""The ACME adapter: the only module that talks to the CA, through certbot's ``acme`` library.

Every function is one short exchange with the CA, rebuilt from stored URLs, so the flow can
stop after any of them and resume in another process. Nothing here sleeps or polls.
"""
from __future__ import annotations

import datetime as dt
import email.utils
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import josepy as jose
import requests
from acme import challenges, client, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from csrproxy.http import environment_ca_bundle, environment_read_once

USER_AGENT = "csrproxy"
BAD_NONCE_RETRIES = 8  # the library retries only once; a badNonce had no effect, so retry more
DIRECTORY_TTL = 3600.0
TIMEOUT = 30


# --- errors -------------------------------------------------------------------------------

class CaError(Exception):
    """The CA refused, failed or could not be reached.

    ``problem`` is the CA's own problem document when it sent one; ``retry_after`` is in
    seconds when the CA asked us to wait.
    """

    TRANSIENT_TYPES = {"badNonce", "rateLimited", "serverInternal"}

    def __init__(self, problem: dict[str, Any], *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(problem.get("detail") or problem.get("type", "ACME error"))
        self.problem = problem
        self.status = status
        self.retry_after = retry_after

    @property
    def code(self) -> str:
        return str(self.problem.get("type", "")).rsplit(":", 1)[-1]

    @property
    def transient(self) -> bool:
        return self.status is None or self.status >= 500 or self.code in self.TRANSIENT_TYPES


# --- account access -----------------------------------------------------------------------

@dataclass(frozen=True)
class Account:
    """What the adapter needs to act as one ACME account (decrypted by the caller)."""

    directory_url: str
    key_pem: bytes
    account_url: str = ""
    tls_ca_file: str = ""
    contact_email: str = ""
    eab_kid: str = ""
    eab_hmac_key: str = ""
    profile: str = ""


def account_key_generate() -> bytes:
    """A new account key: ECDSA P-256 (ES256 signatures are far cheaper than RSA's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class _Network(client.ClientNetwork):
    """ClientNetwork that retries badNonce more than once and remembers Retry-After."""

    last_retry_after: float | None = None
    last_status: int | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any):
        response = super()._send_request(method, url, *args, **kwargs)
        self.last_retry_after = _parse_retry_after(response.headers.get("Retry-After"))
        self.last_status = response.status_code
        return response

    def post(self, *args: Any, **kwargs: Any):
        for attempt in range(BAD_NONCE_RETRIES):
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or attempt == BAD_NONCE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


_directories: dict[str, tuple[float, messages.Directory]] = {}
_directories_lock = threading.Lock()
_local = threading.local()


def _jwk(key_pem: bytes) -> tuple[jose.JWK, jose.JWASignature]:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return jose.JWKEC(key=key), jose.ES256
    return jose.JWKRSA(key=key), jose.RS256


def _client(account: Account) -> client.ClientV2:
    """A per-thread client for the account, reused for keep-alive and its nonce pool."""
    cache: dict[tuple, client.ClientV2] = _local.__dict__.setdefault("clients", {})
    cache_key = (account.directory_url, account.key_pem, account.account_url)
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    jwk, alg = _jwk(account.key_pem)
    regr = None
    if account.account_url:
        regr = messages.RegistrationResource(uri=account.account_url, body=messages.Registration())
    # The account's own TLS CA first; the library passes verify with every call, so the
    # environment's bundle must be given here.
    verify = account.tls_ca_file or environment_ca_bundle() or True
    net = _Network(jwk, account=regr, alg=alg, verify_ssl=verify,
                   user_agent=USER_AGENT, timeout=TIMEOUT)
    environment_read_once(net.session, account.directory_url)
    cache[cache_key] = acme = client.ClientV2(_directory(account, net), net)
    return acme


def _directory(account: Account, net: client.ClientNetwork) -> messages.Directory:
    with _directories_lock:
        cached = _directories.get(account.directory_url)
    if cached and time.monotonic() - cached[0] < DIRECTORY_TTL:
        return cached[1]
    directory = client.ClientV2.get_directory(account.directory_url, net)
    with _directories_lock:
        _directories[account.directory_url] = (time.monotonic(), directory)
    return directory


def _same_origin(account: Account, url: str) -> str:
    """Only ever follow URLs on the directory's own origin."""
    want, got = urlsplit(account.directory_url), urlsplit(url)
    if (got.scheme, got.netloc) != (want.scheme, want.netloc):
        raise CaError({"type": "urn:csrproxy:problem:ca-foreign-url",
                       "detail": f"The CA sent a URL outside its origin: {url}"}, status=400)
    return url


@contextmanager
def _calling(account: Account) -> Iterator[client.ClientV2]:
    """Translate the library's and the network's exceptions into CaError."""
    net: _Network | None = None
    try:
        acme = _client(account)
        net = acme.net
        yield acme
    except CaError:
        raise
    except messages.Error as exc:
        raise CaError(_problem(exc), status=net.last_status if net else None,
                      retry_after=net.last_retry_after if net else None) from None
    except requests.RequestException as exc:
        raise CaError({"type": "urn:csrproxy:problem:ca-unreachable",
                       "detail": f"The CA could not be reached ({type(exc).__name__})."}) from None
    except (errors.ClientError, jose.DeserializationError, ValueError) as exc:
        raise CaError({"type": "urn:csrproxy:problem:ca-bad-response",
                       "detail": f"The CA sent an unexpected answer ({type(exc).__name__})."},
                      status=502) from None


def _problem(error: messages.Error) -> dict[str, Any]:
    """The CA's problem document as plain JSON (subproblems included)."""
    return json.loads(error.json_dumps())


# --- exchanges ----------------------------------------------------------------------------

def account_register(account: Account) -> str:
    """Create (or find, for this key) the account; returns its URL."""
    with _calling(account) as acme:
        eab = None
        if account.eab_kid:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=acme.net.key.public_key(), kid=account.eab_kid,
                hmac_key=account.eab_hmac_key, directory=acme.directory)
        registration = messages.NewRegistration.from_data(
            email=account.contact_email or None, terms_of_service_agreed=True,
            external_account_binding=eab)
        try:
            return acme.new_account(registration).uri
        except errors.ConflictError as conflict:
            return conflict.location


@dataclass
class Authorization:
    url: str
    status: str
    identifier: str
    wildcard: bool = False
    challenge_url: str = ""
    challenge_status: str = ""
    txt_name: str = ""
    txt_value: str = ""
    error: dict[str, Any] | None = None


@dataclass
class Order:
    url: str
    status: str
    finalize_url: str
    certificate_url: str = ""
    error: dict[str, Any] | None = None
    authorizations: list[Authorization] = field(default_factory=list)


def order_create(account: Account, csr_pem: bytes) -> Order:
    """newOrder for the CSR's names, with each authorization fetched once."""
    with _calling(account) as acme:
        resource = acme.new_order(csr_pem, profile=account.profile or None)
        order = _order(account, resource.uri, resource.body)
        order.authorizations = [
            _authorization(account, acme, a.uri, a.body) for a in resource.authorizations
        ]
        return order


def order_fetch(account: Account, url: str) -> Order:
    with _calling(account) as acme:
        body = messages.Order.from_json(_post_as_get(acme, _same_origin(account, url)).json())
        return _order(account, url, body)


def order_finalize(account: Account, order_url: str, finalize_url: str, csr_pem: bytes) -> Order:
    """Send the CSR; returns the order as the CA answered (no look at it first)."""
    with _calling(account) as acme:
        resource = messages.OrderResource(
            uri=order_url, csr_pem=csr_pem,
            body=messages.Order(finalize=_same_origin(account, finalize_url)))
        return _order(account, order_url, acme.begin_finalization(resource).body)


def authorization_fetch(account: Account, url: str) -> Authorization:
    with _calling(account) as acme:
        response = _post_as_get(acme, _same_origin(account, url))
        return _authorization(account, acme, url, messages.Authorization.from_json(response.json()))


def challenge_answer(account: Account, challenge_url: str) -> str:
    """Tell the CA the TXT value is in place; returns the challenge's new status."""
    with _calling(account) as acme:
        challenge = messages.ChallengeBody(chall=challenges.DNS01(token=b"x" * 16),
                                           uri=_same_origin(account, challenge_url))
        # the dns-01 response body is {}: only the URL matters
        return acme.answer_challenge(challenge, challenges.DNS01Response()).body.status.name


def certificate_download(account: Account, url: str) -> str:
    with _calling(account) as acme:
        return _post_as_get(acme, _same_origin(account, url)).text


def _post_as_get(acme: client.ClientV2, url: str) -> requests.Response:
    return acme.net.post(url, None, new_nonce_url=acme.directory["newNonce"])


def _order(account: Account, url: str, body: messages.Order) -> Order:
    return Order(
        url=_same_origin(account, url),
        status=body.status.name if body.status else "pending",
        finalize_url=body.finalize,
        certificate_url=body.certificate or "",
        error=_problem(body.error) if body.error else None,
    )


def _authorization(account: Account, acme: client.ClientV2, url: str,
                   body: messages.Authorization) -> Authorization:
    authz = Authorization(url=_same_origin(account, url), status=body.status.name,
                          identifier=body.identifier.value, wildcard=bool(body.wildcard))
    for challb in body.challenges:
        if challb.error and authz.error is None:
            authz.error = _problem(challb.error)
        if isinstance(challb.chall, challenges.DNS01):
            authz.challenge_url = challb.uri
            authz.challenge_status = challb.status.name
            authz.txt_name = challb.chall.validation_domain_name(authz.identifier)
            authz.txt_value = challb.chall.validation(acme.net.key)
    return authz
