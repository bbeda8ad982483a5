"""schemathesis against the live server: the OpenAPI schema matches what the API does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live_server, transactional_db, acme_token, acme_product, tmp_path
):
    schemathesis = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(schemathesis), "run", f"{live_server.url}/api/schema/",
         "--header", f"Authorization: Bearer {acme_token}",
         "--checks", "all", "--max-examples", "40", "--seed", "20261204",
         # A schema-valid string is rarely a valid CSR (signature, key, names): JSON Schema
         # cannot express that, so "schema-valid bodies must be accepted" cannot hold here.
         "--exclude-checks", "positive_data_acceptance",
         "--exclude-operation-id", "legacy_sign",  # waits for issuance: covered end to end
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
