"""Bad input gets a clear 4xx in one error format, and nothing is written."""

import json
from typing import Any

import pytest
from django.test import Client

from siyu.accounts.models import ApiToken
from siyu.accounts.services import api_token_revoke
from siyu.core.tenancy import tenant_context
from siyu.testing.stories import Company
from siyu.webhooks.models import WebhookEndpoint


def _endpoint_count(company: Company) -> int:
    with tenant_context(company.tenant):
        return WebhookEndpoint.objects.count()


@pytest.fixture
def admin_client(acme: Company, login) -> Client:
    return login.token(acme["admin"])


def _post(client: Client, body: str, path: str = "/api/v1/webhooks/endpoints") -> Any:
    return client.post(path, data=body, content_type="application/json")


def test_malformed_json_is_400(admin_client: Client, acme: Company) -> None:
    response = _post(admin_client, '{"url": "http://127.0.0.1/h", ')
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert "parse" in response.json()["message"]
    assert _endpoint_count(acme) == 0


def test_unknown_fields_are_422_naming_the_field(admin_client: Client, acme: Company) -> None:
    body = {"url": "http://127.0.0.1/h", "event_types": ["*"], "colour": "blue"}
    response = _post(admin_client, json.dumps(body))
    assert response.status_code == 422
    payload = response.json()
    assert payload["code"] == "invalid_request"
    assert "colour" in payload["message"]
    assert _endpoint_count(acme) == 0


def test_wrong_types_are_422(admin_client: Client, acme: Company) -> None:
    response = _post(admin_client, json.dumps({"url": "http://127.0.0.1/h", "event_types": "*"}))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][-1] == "event_types"
    assert _endpoint_count(acme) == 0


def test_domain_validation_is_400_with_a_message(admin_client: Client, acme: Company) -> None:
    response = _post(admin_client, json.dumps({"url": "ftp://x", "event_types": ["*"]}))
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_input",
        "message": "a webhook URL must be an absolute http(s) URL",
    }
    response = _post(
        admin_client, json.dumps({"url": "http://127.0.0.1/h", "event_types": ["x.y"]})
    )
    assert response.status_code == 400
    assert "x.y" in response.json()["message"]
    assert _endpoint_count(acme) == 0


def test_oversized_body_is_413(admin_client: Client, acme: Company, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = json.dumps(
        {"url": "http://127.0.0.1/h", "event_types": ["*"], "description": "x" * 5000}
    )
    response = _post(admin_client, body)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert _endpoint_count(acme) == 0


@pytest.mark.parametrize("query", ["limit=201", "limit=0", "offset=-1", "limit=abc"])
def test_out_of_range_pages_are_422(admin_client: Client, query: str) -> None:
    response = admin_client.get(f"/api/v1/org/staff?{query}")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_pagination_pages_through_results(admin_client: Client) -> None:
    first = admin_client.get("/api/v1/org/staff?limit=3&offset=0").json()
    second = admin_client.get("/api/v1/org/staff?limit=3&offset=3").json()
    assert first["count"] == second["count"] == 7
    assert len(first["items"]) == len(second["items"]) == 3
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}


def test_bad_and_revoked_tokens_are_401(acme: Company, login) -> None:
    assert Client(headers={"Authorization": "Bearer nope"}).get("/api/v1/org/me").status_code == 401
    client = login.token(acme["alice"])
    assert client.get("/api/v1/org/me").status_code == 200
    with tenant_context(acme.tenant):
        token = ApiToken.objects.get(name="test-alice")
        api_token_revoke(actor=acme["admin"], token_id=token.pk)
    response = client.get("/api/v1/org/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_a_departed_members_token_stops_working(acme: Company, login) -> None:
    client = login.token(acme["bob"])
    bob = acme["bob"]
    bob.status = "left"
    bob.save()
    assert client.get("/api/v1/org/me").status_code == 401


def test_session_writes_need_the_csrf_token(acme: Company) -> None:
    from siyu.testing.stories import PASSWORD

    client = Client(enforce_csrf_checks=True)
    assert client.login(username="acme-admin", password=PASSWORD)
    response = _post(client, json.dumps({"url": "http://127.0.0.1/h", "event_types": ["*"]}))
    assert response.status_code in {401, 403}
    assert _endpoint_count(acme) == 0


def test_unknown_api_path_is_a_json_404(admin_client: Client) -> None:
    response = admin_client.get("/api/v1/no-such-thing")
    assert response.status_code == 404


def test_openapi_schema_is_served(admin_client: Client) -> None:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Siyu API"
