"""Real certificates through the whole service: HTTP API → worker → PowerDNS → Pebble.

Pebble runs with PEBBLE_VA_NOSLEEP=1 and its default 5 % nonce rejection; it validates the
dns-01 TXT values against our PowerDNS. Every chain is path-validated to Pebble's root.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from dns_provisioning.models import ChallengeRecord
from signing.models import Certificate, CertificateRequest
from tenants.services import token_create
from tests.conftest import provisioned_product
from tests.csrs import ec_key, make_csr, rsa_key
from tests.e2e.helpers import Client, verify_chain, wait_txt_gone

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(stack, acme_token):
    return Client(stack, acme_token)


def test_one_name(client, acme_product, pebble_root):
    name = f"one.{acme_product.zone}"
    key = ec_key()
    body = client.issue(make_csr([name], key))
    assert body["status"] == "valid", body
    verify_chain(body["certificate"], pebble_root, [name], key)
    assert body["not_before"] < body["not_after"]
    wait_txt_gone([name])
    chain = client.session.get(f"{client.base_url}/api/v1/certificates/{body['id']}/chain")
    assert chain.headers["Content-Type"] == "application/pem-certificate-chain"
    assert chain.text == body["certificate"]


def test_wildcard_and_its_apex(client, acme_product, pebble_root):
    base = f"shop.{acme_product.zone}"
    names = [f"*.{base}", base]
    key = rsa_key()
    body = client.issue(make_csr(names, key))
    assert body["status"] == "valid", body
    verify_chain(body["certificate"], pebble_root, names, key)
    wait_txt_gone(names)


def test_twenty_concurrent_requests_on_distinct_names(client, acme_product, pebble_root):
    jobs = []
    for i in range(20):
        name = f"c{i}.{acme_product.zone}"
        key = ec_key()
        jobs.append((name, key, make_csr([name], key)))
    with ThreadPoolExecutor(max_workers=20) as pool:
        bodies = list(pool.map(lambda job: client.issue(job[2], timeout=120), jobs))
    for (name, key, _), body in zip(jobs, bodies, strict=True):
        assert body["status"] == "valid", body
        verify_chain(body["certificate"], pebble_root, [name], key)
    wait_txt_gone([name for name, _, _ in jobs])
    assert Certificate.objects.count() == 20


def test_two_concurrent_requests_for_one_name_with_different_keys(client, acme_product,
                                                                  pebble_root):
    name = f"same.{acme_product.zone}"
    keys = [ec_key(), ec_key()]
    with ThreadPoolExecutor(max_workers=2) as pool:
        bodies = list(pool.map(lambda key: client.issue(make_csr([name], key)), keys))
    for key, body in zip(keys, bodies, strict=True):
        assert body["status"] == "valid", body
        verify_chain(body["certificate"], pebble_root, [name], key)
    assert bodies[0]["certificate"] != bodies[1]["certificate"]
    wait_txt_gone([name])


def test_v1_sign_with_a_raw_pem_body(stack, acme_token, acme_product, pebble_root):
    name = f"legacy.{acme_product.zone}"
    key = ec_key()
    response = requests.post(f"{stack}/v1/sign", data=make_csr([name], key),
                             headers={"Authorization": f"Bearer {acme_token}"}, timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/pem-certificate-chain"
    verify_chain(response.text, pebble_root, [name], key)
    wait_txt_gone([name])


def test_cn_only_csr_is_ordered_by_its_cn_and_ends_with_pebbles_problem(client, acme_product):
    # Let's Encrypt accepts CN-only CSRs; Pebble refuses to finalize them. The request must
    # end invalid with Pebble's own problem, and its TXT value must be gone.
    name = f"cnonly.{acme_product.zone}"
    response = client.submit(make_csr([name], rsa_key(), cn=name, san=False))
    assert response.status_code == 202, response.text
    assert response.json()["names"] == [name]
    body = client.wait(response.json()["id"])
    assert body["status"] == "invalid"
    assert body["error"]["type"] == "urn:ietf:params:acme:error:unauthorized"
    assert "different number of DNSnames identifiers" in body["error"]["detail"]
    wait_txt_gone([name])
    assert not ChallengeRecord.objects.filter(removed_at__isnull=True).exists()


def test_name_outside_the_zone_never_reaches_the_ca_or_dns(client, acme_product, globex_product):
    names = [f"ok.{acme_product.zone}", f"x.{globex_product.zone}", f"evil{acme_product.zone}"]
    response = client.submit(make_csr(names))
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:csrproxy:problem:name-outside-zone"
    assert [s["identifier"]["value"] for s in problem["subproblems"]] == names[1:]
    assert not CertificateRequest.objects.exists()
    assert not ChallengeRecord.objects.exists()


def test_a_name_the_ca_refuses_ends_invalid_with_the_cas_problem(stack, acme_tenant, run_id):
    # Pebble's blocklist holds blocked.test: names there are refused (rejectedIdentifier).
    with provisioned_product(acme_tenant, "blocked", run_id,
                             zone=f"{run_id}.blocked.test") as product:
        token = token_create(tenant=acme_tenant, product=product)[1]
        body = Client(stack, token).issue(make_csr([f"host.{product.zone}"]))
    assert body["status"] == "invalid"
    assert body["error"]["type"] == "urn:ietf:params:acme:error:rejectedIdentifier"


class TestLegacySignWithoutToken:
    @pytest.fixture
    def legacy(self, acme_tenant, run_id):
        zone = f"legacy.{run_id}.acme.csrproxy.test"
        with provisioned_product(acme_tenant, "legacy", run_id, zone=zone,
                                 legacy_subject=f"CN=go.{zone}") as product:
            yield product

    def test_another_subject_is_refused(self, stack, legacy):
        response = requests.post(f"{stack}/v1/sign",
                                 data=make_csr([f"other.{legacy.zone}"], cn=None), timeout=30)
        assert response.status_code == 400
        assert response.json()["title"] == "Invalid subject"
        assert not CertificateRequest.objects.exists()

    def test_the_legacy_subject_is_ordered_and_pebbles_refusal_is_passed_through(
        self, stack, legacy
    ):
        name = f"go.{legacy.zone}"
        response = requests.post(f"{stack}/v1/sign",
                                 data=make_csr([name], rsa_key(4096), cn=name, san=False),
                                 timeout=120)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["type"] == "urn:ietf:params:acme:error:unauthorized"
        wait_txt_gone([name])
