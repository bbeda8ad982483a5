"""Shared set-up of the adapters' ``requests`` sessions."""
from __future__ import annotations

import requests


def environment_read_once(session: requests.Session, url: str) -> requests.Session:
    """Take the proxy for ``url`` from the environment now, not on every call.

    With ``trust_env`` on, requests re-reads the environment (proxies, CA bundle, netrc) for
    every request: the bench measured ~5% of a worker's CPU there. Every call of an adapter
    goes to one origin (the ACME adapter refuses others), so one lookup holds for all.
    TLS trust is always passed explicitly (``verify``), never taken from the environment.
    """
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(url)
    return session
