"""Health, readiness and metrics endpoints."""

from dataclasses import replace

from payment_service import create_app


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_when_database_answers(client):
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readyz_is_503_envelope_when_database_is_unreachable(settings, db):
    app = create_app(replace(settings, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "provider_unavailable"
    assert "database" in error["message"]
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_metrics_count_requests_by_route_and_status(client):
    client.get("/healthz")
    client.get("/nowhere")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"}' in text


def test_openapi_document_and_docs_page(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.data
