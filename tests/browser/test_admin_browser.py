"""The admin in a real browser (Debian's Chromium, headless, through playwright-core): a
publisher's staff user sees their usage chart and certificates, and nothing of another
publisher. ``scripts/browser-setup.sh`` installs the browser and the driver."""
from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse

from signing.models import Certificate
from tenants.services import product_create
from tests.test_usage_reports import VALID, add_request

ROOT = Path(__file__).resolve().parents[2]
BROWSER_DIR = ROOT / ".stack" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = Path(__file__).with_name("admin_walk.cjs")


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "no chromium"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return "no playwright-core"
    if shutil.which("node") is None:
        return "no node"
    return None


@pytest.fixture
def browser(tmp_path):
    """Runs the driver on a plan and returns what it saw on each page."""
    missing = _browser_missing()
    if missing:
        # make test installs them; a browser test that skips proves nothing
        pytest.fail(f"{missing}: run scripts/browser-setup.sh")

    def walk(base_url: str, username: str, visits: list[dict]) -> dict[str, dict]:
        plan = {"baseUrl": base_url, "username": username, "password": "pw-" + username,
                "visits": visits, "chromium": CHROMIUM, "browserDir": str(BROWSER_DIR),
                "userDataDir": str(tmp_path / f"profile-{username}")}
        plan_file = tmp_path / "plan.json"
        plan_file.write_text(json.dumps(plan))
        done = subprocess.run(["node", str(DRIVER), str(plan_file)], capture_output=True,
                              text=True, timeout=180, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-4000:]
        return {visit["path"]: visit for visit in json.loads(done.stdout)["visits"]}

    return walk


@pytest.fixture
def two_publishers(alice, bob, acme_tenant, globex_tenant):
    """acme with two weeks of issuance and a failure; globex with one certificate."""
    app = product_create(tenant=acme_tenant, slug="app")
    for age in (0.1, 1, 1.2, 3, 6, 9, 13):
        add_request(app, status=VALID, age=timedelta(days=age), names=[f"h{age}"])
    add_request(app, status="invalid", age=timedelta(days=2), names=["broken"])
    portal = product_create(tenant=globex_tenant, slug="portal")
    add_request(portal, status=VALID, age=timedelta(days=1), names=["secret-host"])
    return app, portal


class TestAdminInABrowser:
    def test_alice_sees_her_usage_chart_and_certificates_and_nothing_of_bob(
        self, live_server, transactional_db, browser, two_publishers, tmp_path
    ):
        app, portal = two_publishers
        usage = reverse("admin:tenants_usagereport_tenant", args=[app.tenant_id])
        certificates = reverse("admin:signing_certificate_changelist")
        bobs_product = reverse("admin:tenants_product_change", args=[portal.pk])
        bobs_usage = reverse("admin:tenants_usagereport_tenant", args=[portal.tenant_id])
        screenshot = tmp_path / "alice-usage.png"

        seen = browser(live_server.url, "alice", [
            {"path": reverse("admin:tenants_usagereport_changelist")},
            {"path": usage, "screenshot": str(screenshot)},
            {"path": certificates},
            {"path": bobs_product},
            {"path": bobs_usage},
        ])

        overview = seen[reverse("admin:tenants_usagereport_changelist")]
        assert overview["url"].endswith(usage + "?days=30")  # straight to her tenant
        page = seen[usage]
        assert page["status"] == 200 and "Usage of Acme Software" in page["title"]
        issuing_days = {c.created_at.date() for c in Certificate.objects.filter(
            request__product=app)}
        assert page["chartDays"] == 30 and page["chartBars"] == len(issuing_days)
        assert page["chartBox"]["width"] > 400 and page["chartBox"]["height"] > 100
        assert "portal" not in page["text"] and "globex" not in page["text"].lower()
        assert screenshot.stat().st_size > 10_000
        print(f"screenshot: {screenshot}")

        listed = seen[certificates]["html"]
        own_serials = Certificate.objects.filter(request__product=app)
        assert all(c.serial in listed for c in own_serials)
        assert Certificate.objects.get(request__product=portal).serial not in listed

        # Bob's pages: the admin answers as for an object that does not exist.
        assert portal.zone not in seen[bobs_product]["html"]
        assert "secret-host" not in seen[bobs_product]["html"]
        assert seen[bobs_usage]["status"] == 404
        assert "portal" not in seen[bobs_usage]["text"]
