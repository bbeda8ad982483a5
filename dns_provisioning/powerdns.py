"""The PowerDNS adapter: the only module that talks to PowerDNS (HTTP API and DNS queries).

Unit tests patch this module and nothing else of the DNS side.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import requests
from django.conf import settings

from csrproxy.http import environment_read_once

log = logging.getLogger(__name__)
_local = threading.local()
TIMEOUT = (3.05, 10)


class PowerDnsError(Exception):
    """PowerDNS refused or could not be reached. ``status`` is None when unreachable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """Unreachable or 5xx: try again later. 4xx (e.g. 422) is a configuration error."""
        return self.status is None or self.status >= 500


def _session() -> requests.Session:
    # One keep-alive session per thread (requests.Session is not thread-safe).
    if getattr(_local, "session", None) is None:
        session = environment_read_once(requests.Session(), settings.PDNS_API_URL)
        session.headers["X-API-Key"] = settings.PDNS_API_KEY
        _local.session = session
    return _local.session


def _url(path: str) -> str:
    return f"{settings.PDNS_API_URL.rstrip('/')}/api/v1/servers/{settings.PDNS_SERVER_ID}{path}"


def _call(method: str, path: str, **kwargs: Any) -> requests.Response:
    try:
        response = _session().request(method, _url(path), timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        # The exception text holds only the URL, never the API key (a header).
        raise PowerDnsError(f"PowerDNS unreachable: {type(exc).__name__}") from None
    if response.status_code >= 400 and not (method == "GET" and response.status_code == 404):
        try:
            reason = response.json().get("error", "")
        except ValueError:
            reason = response.text[:200]
        raise PowerDnsError(
            f"PowerDNS {method} {path} answered {response.status_code}: {reason}",
            status=response.status_code,
        )
    return response


def canonical(name: str) -> str:
    """PowerDNS wants absolute names with the trailing dot."""
    return name.rstrip(".") + "."


def zone_exists(zone: str) -> bool:
    return _call("GET", f"/zones/{canonical(zone)}", params={"rrsets": "false"}).status_code == 200


def zone_create(zone: str, nameservers: list[str], rrsets: list[dict[str, Any]]) -> None:
    z = canonical(zone)
    soa = f"{canonical(nameservers[0])} hostmaster.{z} 1 10800 3600 604800 60"
    body = {
        "name": z,
        "kind": "Native",
        "nameservers": [],
        "rrsets": [
            rrset(z, "SOA", [soa], ttl=3600),
            rrset(z, "NS", [canonical(ns) for ns in nameservers], ttl=3600),
            *rrsets,
        ],
    }
    _call("POST", "/zones", json=body)
    log.info("created zone %s in PowerDNS", z)


def zone_delete(zone: str) -> None:
    _call("DELETE", f"/zones/{canonical(zone)}")
    log.info("deleted zone %s from PowerDNS", canonical(zone))


def rrset(name: str, rtype: str, contents: list[str], ttl: int = 60) -> dict[str, Any]:
    """A REPLACE of the whole RRset (PowerDNS 4.7 has no partial updates), DELETE if empty."""
    if not contents:
        return {"name": canonical(name), "type": rtype, "changetype": "DELETE"}
    return {
        "name": canonical(name),
        "type": rtype,
        "ttl": ttl,
        "changetype": "REPLACE",
        "records": [{"content": c, "disabled": False} for c in contents],
    }


def rrsets_patch(zone: str, rrsets: list[dict[str, Any]]) -> None:
    if rrsets:
        _call("PATCH", f"/zones/{canonical(zone)}", json={"rrsets": rrsets})


def txt_content(value: str) -> str:
    return f'"{value}"'


def query(server: str, name: str, rtype: str, timeout: float = 2.0) -> list[str]:
    """Ask one authoritative server directly (``host:port``); answers as text.

    Raises PowerDnsError when the server does not answer, so "not served" and "server down"
    stay distinguishable.
    """
    host, _, port = server.rpartition(":")
    message = dns.message.make_query(canonical(name), dns.rdatatype.from_text(rtype))
    try:
        answer = dns.query.udp(message, host.strip("[]"), port=int(port), timeout=timeout)
        if answer.flags & dns.flags.TC:
            answer = dns.query.tcp(message, host.strip("[]"), port=int(port), timeout=timeout)
    except (dns.exception.DNSException, OSError) as exc:
        raise PowerDnsError(f"DNS query to {server} failed: {type(exc).__name__}") from None
    wanted = dns.rdatatype.from_text(rtype)
    out: list[str] = []
    for answer_rrset in answer.answer:
        if answer_rrset.rdtype != wanted:  # e.g. the CNAME that led to the answer
            continue
        for rdata in answer_rrset:
            if rtype == "TXT":
                out.append(b"".join(rdata.strings).decode())
            else:
                out.append(rdata.to_text())
    return out
