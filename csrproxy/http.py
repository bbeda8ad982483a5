"""Shared set-up of the adapters' ``requests`` sessions."""
from __future__ import annotations

import os

import requests


def environment_read_once(session: requests.Session, url: str) -> requests.Session:
    """Take the proxy for ``url`` and the CA bundle from the environment once, not per call.

    With ``trust_env`` on, requests re-reads the environment (proxies, CA bundle, netrc) for
    every request: the bench measured ~5% of a worker's CPU there. Every call of an adapter
    goes to one origin (the ACME adapter refuses others), so one lookup holds for all.
    """
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(url)
    session.verify = environment_ca_bundle() or session.verify
    return session


def environment_ca_bundle() -> str | None:
    """The CA bundle requests would take from the environment, as with ``trust_env`` on."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
