"""Real certificates through the whole service: HTTP API → worker → PowerDNS → CA.

Each test of the common suite runs against both CAs of the stack: Pebble (with
PEBBLE_VA_NOSLEEP=1 and its default 5 % nonce rejection) and acme2certifier (synchronous
validation). Both validate the dns-01 TXT values against our PowerDNS for real; every chain
is path-validated to the issuing CA's root.
"""
from __future__ import annotations

import http.client
import ssl
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
def client(stack, acme_token, acme_product, ca):
    ca.bind(acme_product)
    return Client(stack, acme_token)


def test_one_name(client, acme_product, ca):
    name = f"one.{acme_product.zone}"
    key = ec_key()
    body = client.issue(make_csr([name], key))
    assert body["status"] == "valid", body
    verify_chain(body["certificate"], ca.root_pem, [name], key)
    assert body["not_before"] < body["not_after"]
    wait_txt_gone([name])
    chain = client.session.get(f"{client.base_url}/api/v1/certificates/{body['id']}/chain")
    assert chain.headers["Content-Type"] == "application/pem-certificate-chain"
    assert chain.text == body["certificate"]


def test_wildcard_and_its_apex(client, acme_product, ca):
    base = f"shop.{acme_product.zone}"
    names = [f"*.{base}", base]
    key = rsa_key()
    body = client.issue(make_csr(names, key))
    assert body["status"] == "valid", body
    verify_chain(body["certificate"], ca.root_pem, names, key)
    wait_txt_gone(names)


def test_twenty_concurrent_requests_on_distinct_names(client, acme_product, ca):
    jobs = []
    for i in range(20):
        name = f"c{i}.{acme_product.zone}"
        key = ec_key()
        jobs.append((name, key, make_csr([name], key)))
    with ThreadPoolExecutor(max_workers=20) as pool:
        bodies = list(pool.map(lambda job: client.issue(job[2], timeout=120), jobs))
    for (name, key, _), body in zip(jobs, bodies, strict=True):
        assert body["status"] == "valid", body
        verify_chain(body["certificate"], ca.root_pem, [name], key)
    wait_txt_gone([name for name, _, _ in jobs])
    assert Certificate.objects.count() == 20


def test_two_concurrent_requests_for_one_name_with_different_keys(client, acme_product, ca):
    name = f"same.{acme_product.zone}"
    keys = [ec_key(), ec_key()]
    with ThreadPoolExecutor(max_workers=2) as pool:
        bodies = list(pool.map(lambda key: client.issue(make_csr([name], key)), keys))
    for key, body in zip(keys, bodies, strict=True):
        assert body["status"] == "valid", body
        verify_chain(body["certificate"], ca.root_pem, [name], key)
    assert bodies[0]["certificate"] != bodies[1]["certificate"]
    wait_txt_gone([name])


def test_v1_sign_with_a_raw_pem_body(client, acme_token, acme_product, ca):
    name = f"legacy.{acme_product.zone}"
    key = ec_key()
    response = requests.post(f"{client.base_url}/v1/sign", data=make_csr([name], key),
                             headers={"Authorization": f"Bearer {acme_token}"}, timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/pem-certificate-chain"
    verify_chain(response.text, ca.root_pem, [name], key)
    wait_txt_gone([name])


def test_cn_only_csr_is_ordered_by_its_cn(client, acme_product, ca):
    # What existing /v1/sign clients send. Let's Encrypt and acme2certifier issue it (with the
    # CN as the SAN); Pebble refuses to finalize it: the request must then end invalid with
    # Pebble's own problem. Either way the TXT value is gone afterwards.
    name = f"cnonly.{acme_product.zone}"
    key = rsa_key()
    response = client.submit(make_csr([name], key, cn=name, san=False))
    assert response.status_code == 202, response.text
    assert response.json()["names"] == [name]
    body = client.wait(response.json()["id"])
    if ca.name == "pebble":
        assert body["status"] == "invalid"
        assert body["error"]["type"] == "urn:ietf:params:acme:error:unauthorized"
        assert "different number of DNSnames identifiers" in body["error"]["detail"]
    else:
        assert body["status"] == "valid", body
        verify_chain(body["certificate"], ca.root_pem, [name], key)
    wait_txt_gone([name])
    assert not ChallengeRecord.objects.filter(removed_at__isnull=True).exists()


def test_name_outside_the_zone_never_reaches_the_ca_or_dns(stack, acme_token, acme_product,
                                                           globex_product):
    names = [f"ok.{acme_product.zone}", f"x.{globex_product.zone}", f"evil{acme_product.zone}"]
    response = Client(stack, acme_token).submit(make_csr(names))
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:csrproxy:problem:name-outside-zone"
    assert [s["identifier"]["value"] for s in problem["subproblems"]] == names[1:]
    assert not CertificateRequest.objects.exists()
    assert not ChallengeRecord.objects.exists()


def test_a_name_pebble_refuses_ends_invalid_with_its_problem(stack, acme_tenant, run_id):
    # Pebble's blocklist holds blocked.test: names there are refused (rejectedIdentifier).
    with provisioned_product(acme_tenant, "blocked", run_id,
                             zone=f"{run_id}.blocked.test") as product:
        token = token_create(tenant=acme_tenant, product=product)[1]
        body = Client(stack, token).issue(make_csr([f"host.{product.zone}"]))
    assert body["status"] == "invalid"
    assert body["error"]["type"] == "urn:ietf:params:acme:error:rejectedIdentifier"


def test_a_failed_dns01_on_acme2certifier_ends_invalid_within_seconds(stack, acme_token,
                                                                       acme_product, a2c_nodns):
    # acme2certifier marks the challenge invalid without an error and leaves the order
    # pending; the service must read the authorization itself, not wait for a timeout.
    a2c_nodns.bind(acme_product)
    name = f"fails.{acme_product.zone}"
    body = Client(stack, acme_token).issue(make_csr([name]), timeout=30)
    assert body["status"] == "invalid"
    assert body["error"]["type"] == "urn:csrproxy:problem:authorization-invalid"
    assert name in body["error"]["detail"]
    request = CertificateRequest.objects.get(pk=body["id"])
    assert (request.finished_at - request.created_at).total_seconds() < 15
    wait_txt_gone([name])


def test_two_products_on_different_cas_issue_side_by_side(stack, acme_tenant, run_id,
                                                          pebble, a2c):
    with provisioned_product(acme_tenant, "p1", run_id) as on_pebble, \
            provisioned_product(acme_tenant, "p2", run_id) as on_a2c:
        pebble.bind(on_pebble)
        a2c.bind(on_a2c)
        jobs = []
        for product, ca in ((on_pebble, pebble), (on_a2c, a2c)):
            token = token_create(tenant=acme_tenant, product=product)[1]
            name, key = f"side.{product.zone}", ec_key()
            jobs.append((Client(stack, token), name, key, ca))
        with ThreadPoolExecutor(max_workers=2) as pool:
            bodies = list(pool.map(lambda j: j[0].issue(make_csr([j[1]], j[2])), jobs))
        for (_, name, key, ca), body in zip(jobs, bodies, strict=True):
            assert body["status"] == "valid", body
            verify_chain(body["certificate"], ca.root_pem, [name], key)


def test_a_request_in_flight_finishes_on_the_ca_it_started_with(stack, acme_token,
                                                                acme_product, pebble, a2c):
    pebble.bind(acme_product)
    client = Client(stack, acme_token)
    name, key = f"moving.{acme_product.zone}", ec_key()
    request_id = client.submit(make_csr([name], key)).json()["id"]
    a2c.bind(acme_product)  # the product moves; the request was already taken
    body = client.wait(request_id)
    request = CertificateRequest.objects.select_related("acme_account").get(pk=request_id)
    expected = pebble if request.acme_account.is_default else a2c
    verify_chain(body["certificate"], expected.root_pem, [name], key)
    later = client.issue(make_csr([f"later.{acme_product.zone}"], later_key := ec_key()))
    verify_chain(later["certificate"], a2c.root_pem, [f"later.{acme_product.zone}"], later_key)


def test_existing_client_gets_a_cn_only_certificate_from_v1_sign_over_https(
    tls_front, worker, transactional_db, acme_tenant, run_id, a2c
):
    # Exactly what the original service's clients do: no token, a CN-only RSA-4096 CSR,
    # plain http.client with a default SSL context that trusts the front.
    zone = f"legacy.{run_id}.acme.csrproxy.test"
    name = f"go.{zone}"
    with provisioned_product(acme_tenant, "legacy", run_id, zone=zone,
                             legacy_subject=f"CN={name}") as product:
        a2c.bind(product)
        key = rsa_key(4096)
        host, port, cafile = tls_front
        connection = http.client.HTTPSConnection(
            host, port, timeout=120, context=ssl.create_default_context(cafile=cafile))
        connection.request("POST", "/v1/sign", body=make_csr([name], key, cn=name, san=False),
                           headers={"Content-Type": "application/x-pem-file"})
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
    leaf = verify_chain(body, a2c.root_pem, [name], key)
    assert leaf.subject.rfc4514_string() == f"CN={name}"
    wait_txt_gone([name])


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

    def test_pebbles_refusal_of_a_cn_only_csr_is_passed_through(self, stack, legacy):
        name = f"go.{legacy.zone}"
        response = requests.post(f"{stack}/v1/sign",
                                 data=make_csr([name], rsa_key(4096), cn=name, san=False),
                                 timeout=120)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["type"] == "urn:ietf:params:acme:error:unauthorized"
        wait_txt_gone([name])
