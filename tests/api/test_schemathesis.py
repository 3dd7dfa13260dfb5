"""Property-based tests of the live OpenAPI schema with schemathesis: generated requests to every
operation (valid and invalid bodies, odd ids, random multipart files) never get a 5xx, and every
answer matches what the schema says (status codes, content types, bodies).

The app is the real one (real models, a catalog in a temporary directory) with one stand-in: the
link fetcher refuses every URL. The default link policy already refuses private addresses, but
hypothesis can generate public host names, and no test may connect to a public address.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from vdup.api.app import create_app
from vdup.errors import FetchRefused
from vdup.settings import Settings

#: Examples per operation: enough to reach every validation branch, under ~20 s for all of them.
EXAMPLES = 25
#: Made by the app's start-up (on the first generated request), removed after the last.
DATA_DIR = Path(tempfile.gettempdir()) / f"vdup-schemathesis-{uuid.uuid4().hex}"


class RefuseEveryLink:
    """The ``fetch`` interface of ``vdup.api.fetch.HttpFetcher``, refusing before any I/O."""

    async def fetch(self, url: str) -> bytes:
        raise FetchRefused("this test fetches nothing: every link is refused")


# Built at import, as schemathesis needs the schema to make the tests; ``create_app`` does no
# work until start-up. The schema comes from ``app.openapi()``, what /openapi.json serves.
# (``from_asgi`` would start the app while tests are collected; ``from_fixture`` does not work
# with pytest 9.)
APP = create_app(Settings(data_dir=DATA_DIR), fetcher=RefuseEveryLink())
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP


@pytest.fixture(scope="module", autouse=True)
def _stop_the_app():
    yield
    asgi.shutdown_lifespans()  # the app's shutdown closes its catalog
    shutil.rmtree(DATA_DIR, ignore_errors=True)


def test_the_schema_under_test_is_the_served_one():
    from fastapi.testclient import TestClient

    served = TestClient(APP).get("/openapi.json")  # no start-up needed to serve the schema
    assert served.json() == APP.openapi()
    assert "ErrorBody" in served.json()["components"]["schemas"]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors_and_answers_match_the_schema(case):
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
