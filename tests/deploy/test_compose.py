"""deploy/compose.yaml refers only to what exists: our image, our commands, the variables our
programs read (with values they accept), the ports they serve and the paths they route."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from payment_service.callbacks.sender import SEND_TIMEOUT
from payment_service.server import gunicorn_options
from payment_service.settings import ConfigError
from shared_contracts.signing import generate_secret
from tests.deploy import sources

OUR_IMAGE = "ticket-payments:local"
PAYMENT_SERVICES = ("migrate", "provision", "api", "worker")


def services() -> dict[str, dict[str, Any]]:
    return dict(sources.compose()["services"])


def environment(name: str) -> dict[str, str]:
    env = services()[name].get("environment") or {}
    assert isinstance(env, dict), f"{name}: write environment as a mapping"
    return {k: str(v) for k, v in sources.interpolated(env, sources.env_example()).items()}


def command(name: str) -> list[str]:
    return list(services()[name].get("command") or sources.dockerfile_cmd())


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, f"{value!r}: write durations in seconds"
    return int(match.group(1))


def health_url(service: dict[str, Any]) -> str:
    test = " ".join(service["healthcheck"]["test"])
    found = re.search(r"http://127\.0\.0\.1:\d+/[\w/]*", test)
    assert found, f"no URL in the health check {test!r}"
    return found.group(0)


def test_the_stack_has_its_parts():
    parts = services()
    assert set(parts) >= {"postgres", "migrate", "api", "worker", "platform"}
    assert parts["api"]["deploy"]["replicas"] == 2
    assert parts["worker"]["deploy"]["replicas"] == 2
    assert parts["migrate"]["restart"] == "no"


def test_our_services_run_the_image_the_dockerfile_builds():
    ours = [name for name, service in services().items() if "build" in service]
    assert set(ours) == {*PAYMENT_SERVICES, "platform"}
    for name in ours:
        service = services()[name]
        assert service["image"] == OUR_IMAGE, name
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert (sources.DEPLOY / service["build"]["context"] / "deploy/Dockerfile").is_file()


def test_every_command_exists():
    for name in (*PAYMENT_SERVICES, "platform"):
        sources.check_service_command(command(name))
    assert command("migrate") == ["payment-service", "db", "upgrade"]
    assert command("worker") == ["payment-service", "worker"]
    assert command("api") == sources.dockerfile_cmd()  # the image's default: gunicorn


def test_a_mistyped_command_is_caught():
    with pytest.raises(Exception, match="no command 'upgrad'"):
        sources.check_service_command(["payment-service", "db", "upgrad"])
    with pytest.raises(Exception, match="--hots"):
        sources.check_service_command(["python", "-m", "platform_client.demo", "serve", "--hots"])


def test_services_set_only_variables_their_program_reads(payment_names, platform_names):
    for name in PAYMENT_SERVICES:
        unknown = sources.unknown_names(environment(name), payment_names)
        assert not unknown, f"{name} sets {unknown}, which no payment-service code reads"
    unknown = sources.unknown_names(environment("platform"), platform_names)
    assert not unknown, f"platform sets {unknown}, which the platform does not read"


def test_a_mistyped_variable_is_caught(payment_names):
    typo = {**environment("api"), "PAYMENT_DATABSE_URL": "postgresql://x"}
    assert sources.unknown_names(typo, payment_names) == {"PAYMENT_DATABSE_URL"}


def test_the_payment_services_settings_are_valid(tmp_path):
    for name in PAYMENT_SERVICES:
        settings = sources.check_payment_settings(environment(name))
        assert make_url(settings.database_url).host == "postgres", name
        assert settings.sandbox and settings.public_url == "http://127.0.0.1:8000"
    broken = {**environment("api"), "PAYMENT_LOG_FORMAT": "xml"}
    with pytest.raises(ConfigError):
        sources.check_payment_settings(broken)


def test_the_platforms_settings_are_valid(tmp_path):
    from platform_client.demo.settings import DemoSettings

    env = environment("platform")
    merchant = tmp_path / "dev-merchant.json"
    merchant.write_text(json.dumps({"apiKey": "sk_x", "signingSecret": generate_secret()}))
    settings = DemoSettings.from_env({**env, "PLATFORM_MERCHANT_FILE": str(merchant)})
    # The platform calls the API by its service name, and is the merchant's origin.
    assert urlsplit(settings.payment_service_url).hostname == "api"
    assert urlsplit(settings.public_url).port == int(command("platform")[-1])
    # `provision` writes the merchant file where the platform reads it.
    provision = command("provision")
    assert provision[provision.index("--file") + 1] == env["PLATFORM_MERCHANT_FILE"]
    provision_volume = services()["provision"]["volumes"][0].split(":")
    platform_volume = services()["platform"]["volumes"][0].split(":")
    assert provision_volume[:2] == platform_volume[:2]
    assert env["PLATFORM_MERCHANT_FILE"].startswith(provision_volume[1] + "/")


def test_every_secret_comes_from_the_env_file_and_is_used():
    example = sources.env_example()
    used = sources.interpolation_names()
    assert used == set(example), "deploy/.env.example and compose.yaml's ${...} must agree"
    for name, value in example.items():
        assert value, f"{name} has no example value"


def test_health_checks_ask_the_routes_and_ports_the_programs_serve(routes):
    api = urlsplit(health_url(services()["api"]))
    assert api.port == sources.app_port() and api.path == "/readyz" and api.path in routes
    edge = urlsplit(health_url({"healthcheck": services()["edge"]["healthcheck"]}))
    assert edge.path in routes
    platform = urlsplit(health_url(services()["platform"]))
    assert platform.port == int(command("platform")[-1])
    assert platform.path in platform_routes()


def platform_routes() -> set[str]:
    from platform_client.demo.app import create_app
    from platform_client.demo.settings import DemoSettings
    from shared_contracts.signing import generate_secret

    settings = DemoSettings(
        database_url="sqlite://", api_key="sk_x", signing_secrets=(generate_secret(),)
    )
    app = create_app(settings, init_db=False)
    return {rule.rule for rule in app.url_map.iter_rules()}


def test_the_edge_sends_the_hosts_port_to_the_api_replicas():
    nginx = (sources.DEPLOY / "compose/nginx.conf").read_text()
    assert f"server api:{sources.app_port()};" in nginx
    listen = int(re.search(r"listen (\d+);", nginx).group(1))
    assert services()["edge"]["ports"] == [f"127.0.0.1:8000:{listen}"]
    mounted = services()["edge"]["volumes"][0].split(":")[0]
    assert (sources.DEPLOY / mounted).resolve() == (sources.DEPLOY / "compose/nginx.conf")


def test_the_order_of_start():
    parts = services()
    assert parts["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        assert parts[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert parts["platform"]["depends_on"]["provision"] == {
        "condition": "service_completed_successfully"
    }


def test_the_databases_the_urls_name_are_created():
    init = (sources.DEPLOY / "compose/postgres-init.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+);", init))
    postgres = services()["postgres"]
    assert postgres["volumes"][1].startswith(
        "./compose/postgres-init.sql:/docker-entrypoint-initdb.d/"
    )
    urls = [
        environment("api")["PAYMENT_DATABASE_URL"],
        environment("api")["SANDBOX_DATABASE_URL"],
        environment("platform")["PLATFORM_DATABASE_URL"],
    ]
    names = {make_url(url).database for url in urls}
    assert names <= created | {postgres["environment"]["POSTGRES_DB"]}
    for url in urls:
        assert make_url(url).username == postgres["environment"]["POSTGRES_USER"]


def test_stop_grace_periods_cover_a_clean_shutdown():
    graceful = gunicorn_options(bind="x", workers=1, threads=1)["graceful_timeout"]
    assert seconds(services()["api"]["stop_grace_period"]) > graceful
    # A worker lets callback attempts in flight finish; each may take SEND_TIMEOUT.
    assert seconds(services()["worker"]["stop_grace_period"]) >= 2 * SEND_TIMEOUT


def test_the_file_is_plain_yaml_with_anchors_resolved():
    # Compose's merge keys (<<) are resolved by the YAML loader: the worker keeps the shared
    # environment and adds its own.
    raw = yaml.safe_load((sources.DEPLOY / "compose.yaml").read_text())
    assert raw["services"]["worker"]["environment"]["PAYMENT_DATABASE_URL"].startswith(
        "postgresql://"
    )
    assert "PAYMENT_SANDBOX_URL" in raw["services"]["worker"]["environment"]
    assert "PAYMENT_SANDBOX_URL" not in raw["services"]["api"]["environment"]
