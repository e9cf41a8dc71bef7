"""Every error path answers with the contract's envelope and the request id (CONTRACT §3, §4)."""

import flask_smorest
import marshmallow as ma
import pytest
from flask.views import MethodView

from payment_service.settings import MAX_BODY_BYTES
from tests.factories import make_merchant

probe = flask_smorest.Blueprint("probe", __name__, url_prefix="/v1/probe")


class ProbeSchema(ma.Schema):
    count = ma.fields.Integer(required=True, strict=True)
    name = ma.fields.String(required=True)


@probe.route("")
class Probe(MethodView):
    @probe.arguments(ProbeSchema)
    @probe.response(200, ProbeSchema)
    def post(self, data):
        return data


@probe.route("/boom")
class Boom(MethodView):
    def get(self):
        raise RuntimeError("SELECT secret FROM table -- internal detail")


@pytest.fixture
def probe_client(app, db):
    app.extensions["payment_api"].register_blueprint(probe)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = make_merchant(db).auth["Authorization"]
    return client


def test_v1_without_api_key_is_401_before_the_body_is_looked_at(client):
    response = client.post("/v1/probe", data=b"{", content_type="application/json")
    assert_envelope(response, 401, "unauthenticated")


def assert_envelope(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert error["requestId"] == response.headers["X-Request-ID"]
    assert isinstance(error["details"], dict)
    return error


def test_unknown_route_is_404_envelope(client):
    assert_envelope(client.get("/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_envelope_with_allow(client):
    response = client.delete("/healthz")
    assert_envelope(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_body_over_one_mebibyte_is_refused_before_parsing(probe_client):
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    response = probe_client.post("/v1/probe", data=body, content_type="application/json")
    assert_envelope(response, 413, "payload_too_large")


def test_wrong_content_type_is_415(probe_client):
    response = probe_client.post(
        "/v1/probe", data="count=1", content_type="application/x-www-form-urlencoded"
    )
    assert_envelope(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("body", [b"{", b"{'a': 1}", b"\xff\xfe", b'{"count": 1,}'])
def test_malformed_json_is_400(probe_client, body):
    response = probe_client.post("/v1/probe", data=body, content_type="application/json")
    assert_envelope(response, 400, "malformed_json")


def test_schema_validation_is_422_with_field_details(probe_client):
    response = probe_client.post("/v1/probe", json={"count": "7"})
    error = assert_envelope(response, 422, "validation_error")
    assert set(error["details"]) == {"count", "name"}
    assert all(isinstance(msgs, list) and msgs for msgs in error["details"].values())


def test_valid_request_passes_the_guards(probe_client):
    response = probe_client.post("/v1/probe", json={"count": 7, "name": "x"})
    assert response.status_code == 200
    assert response.get_json() == {"count": 7, "name": "x"}


def test_unexpected_exception_is_500_without_internals(probe_client):
    response = probe_client.get("/v1/probe/boom")
    error = assert_envelope(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "SELECT" not in text and "RuntimeError" not in text
    assert error["details"] == {}


def test_request_id_is_echoed_when_valid(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc.DEF:123-_"})
    assert response.headers["X-Request-ID"] == "abc.DEF:123-_"


@pytest.mark.parametrize("bad", ["", "a" * 129, "has space", "semi;colon", "ünï"])
def test_invalid_request_id_is_replaced(client, bad):
    response = client.get("/nothing", headers={"X-Request-ID": bad})
    generated = response.headers["X-Request-ID"]
    assert generated != bad and generated.startswith("req_")
    assert response.get_json()["error"]["requestId"] == generated


def test_a_coroutine_view_is_refused_when_checked(app):
    """The app skips Flask's per-request coroutine check, so it refuses async views up front."""

    async def later() -> str:
        return "never run"

    app.add_url_rule("/async-probe", "async_probe", later)
    with pytest.raises(TypeError, match="coroutine"):
        app.refuse_coroutines()


def test_a_coroutine_method_of_a_method_view_is_refused_when_checked(app):
    from flask.views import MethodView

    class Probe(MethodView):
        async def post(self) -> str:
            return "never run"

    app.add_url_rule("/async-method-probe", view_func=Probe.as_view("async_method_probe"))
    with pytest.raises(TypeError, match="coroutine"):
        app.refuse_coroutines()


def test_a_coroutine_error_handler_is_refused_when_checked(app):
    async def handler(exc: Exception) -> str:
        return "never run"

    app.register_error_handler(418, handler)
    with pytest.raises(TypeError, match="coroutine"):
        app.refuse_coroutines()


def test_the_app_as_built_has_no_coroutine(app):
    app.refuse_coroutines()  # create_app ran it too; the registries it walks are all real
