"""deploy/k8s refers only to what exists (image, commands, variables, ports, probe paths,
config objects) and asks for what running it safely needs (probes, resources, non-root,
grace periods longer than a clean shutdown takes)."""

from __future__ import annotations

import inspect
import secrets
from typing import Any

import pytest
import yaml

from payment_service.callbacks.sender import SEND_TIMEOUT
from payment_service.providers.sandbox import SandboxProvider
from payment_service.server import gunicorn_options
from payment_service.settings import ConfigError
from tests.deploy import sources

IMAGE = "ticket-payments"  # the kustomize image name every container uses


def kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((sources.K8S / "kustomization.yaml").read_text()))


def deployment(name: str) -> dict[str, Any]:
    return sources.k8s_objects("Deployment")[name]


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"])


def workloads() -> dict[str, dict[str, Any]]:
    return {**sources.k8s_objects("Deployment"), **sources.k8s_objects("Job")}


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets: its ConfigMap and Secret, then its own env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(sources.k8s_objects("ConfigMap")[source["configMapRef"]["name"]]["data"])
        else:
            env.update(sources.k8s_objects("Secret")[source["secretRef"]["name"]]["stringData"])
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    return env


def test_kustomization_lists_every_manifest_but_the_example_secret():
    listed = set(kustomization()["resources"])
    present = {p.name for p in sources.K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secret.example.yaml"}
    [image] = kustomization()["images"]
    assert image["name"] == IMAGE and image["newTag"]


def test_the_parts_are_there():
    assert set(sources.k8s_objects("Deployment")) == {
        "payment-service-api",
        "payment-service-worker",
    }
    assert set(sources.k8s_objects("Job")) == {"payment-service-migrate"}
    assert set(sources.k8s_objects("Service")) == {"payment-service-api"}
    assert set(sources.k8s_objects("PodDisruptionBudget")) == {
        "payment-service-api",
        "payment-service-worker",
    }
    [hpa] = sources.k8s_objects("HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "payment-service-api",
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment("payment-service-api")["spec"]  # the HPA owns it


def test_every_container_runs_our_image_and_an_existing_command():
    commands = {}
    for name, obj in workloads().items():
        for container in pod(obj)["containers"]:
            assert container["image"] == IMAGE, name
            sources.check_service_command(container["command"])
            commands[name] = container["command"]
    assert commands == {
        "payment-service-api": sources.dockerfile_cmd(),
        "payment-service-worker": ["payment-service", "worker"],
        "payment-service-migrate": ["payment-service", "db", "upgrade"],
    }


def test_config_and_secrets_are_variables_the_service_reads_with_valid_values(payment_names):
    secret = sources.k8s_objects("Secret")["payment-service-secrets"]
    assert secret["_file"] == "secret.example.yaml"
    assert all("REPLACE-ME" in value for value in secret["stringData"].values())
    for name, obj in workloads().items():
        for container in pod(obj)["containers"]:
            env = container_env(container)
            unknown = sources.unknown_names(env, payment_names)
            assert not unknown, f"{name} sets {unknown}, which no payment-service code reads"
            # The example's secret key is a placeholder the service refuses in production;
            # with a real one put in, everything else is valid as it stands.
            with pytest.raises(ConfigError, match="placeholder"):
                sources.check_payment_settings(env)
            env = {**env, "PAYMENT_SECRET_KEY": secrets.token_hex(32)}
            settings = sources.check_payment_settings(env)
            assert settings.is_production and not settings.allow_private_callbacks
    with pytest.raises(ConfigError):  # the service's own check stops a bad value
        sources.check_payment_settings({**env, "PAYMENT_PUBLIC_URL": "http://pay.example.com"})


def test_probes_ask_the_paths_and_port_the_api_serves(routes):
    [api] = pod(deployment("payment-service-api"))["containers"]
    ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    assert ports == {"http": sources.app_port()}
    probes = {kind: api[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert api["startupProbe"]["httpGet"]["path"] in routes
    for probe in probes.values():
        assert probe["path"] in routes and probe["port"] in ports


def test_the_service_and_the_budgets_select_the_pods():
    api_labels = deployment("payment-service-api")["spec"]["template"]["metadata"]["labels"]
    worker_labels = deployment("payment-service-worker")["spec"]["template"]["metadata"]["labels"]
    service = sources.k8s_objects("Service")["payment-service-api"]
    assert service["spec"]["selector"].items() <= api_labels.items()
    [api] = pod(deployment("payment-service-api"))["containers"]
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in api["ports"]}
    budgets = sources.k8s_objects("PodDisruptionBudget")
    for name, labels in (
        ("payment-service-api", api_labels),
        ("payment-service-worker", worker_labels),
    ):
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budgets[name]["spec"]["minAvailable"] == 1
    # The worker reaches the sandbox through the API's Service.
    [worker] = pod(deployment("payment-service-worker"))["containers"]
    assert (
        container_env(worker)["PAYMENT_SANDBOX_URL"]
        == f"http://{service['metadata']['name']}/sandbox"
    )


def test_pods_run_as_the_images_user_with_a_read_only_root():
    uid, gid = (int(part) for part in sources.dockerfile_user().split(":"))
    assert uid != 0
    for name, obj in workloads().items():
        spec = pod(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]) == (
            uid,
            gid,
        )
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}, name


def test_grace_periods_outlast_a_clean_shutdown():
    api = pod(deployment("payment-service-api"))
    [container] = api["containers"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    graceful = gunicorn_options(bind="x", workers=1, threads=1)["graceful_timeout"]
    assert api["terminationGracePeriodSeconds"] >= pre_stop + graceful + 5
    # The worker finishes each callback attempt in flight (SEND_TIMEOUT) and the provider call
    # its current job may be making (the sandbox adapter's connect + read timeouts).
    defaults = inspect.signature(SandboxProvider.__init__).parameters
    provider_call = defaults["connect_timeout"].default + defaults["read_timeout"].default
    worker = pod(deployment("payment-service-worker"))
    assert worker["terminationGracePeriodSeconds"] >= SEND_TIMEOUT + provider_call + 5


def test_liveness_outlasts_a_slow_provider_holding_every_request_thread():
    """/healthz waits for a free request thread; a provider call (connect + read timeouts)
    may hold each of them. The pod is restarted only after several such calls' worth of
    failed probes, so a slow provider alone does not cut off the buyers in flight."""
    [container] = pod(deployment("payment-service-api"))["containers"]
    liveness = container["livenessProbe"]
    defaults = inspect.signature(SandboxProvider.__init__).parameters
    provider_call = defaults["connect_timeout"].default + defaults["read_timeout"].default
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 4 * provider_call
    assert liveness["timeoutSeconds"] >= 5


def test_the_migration_job_runs_once_and_is_collected():
    job = sources.k8s_objects("Job")["payment-service-migrate"]
    assert pod(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    # docs/operations.md applies the Job alone with this selector: it must pick only the Job.
    selected = [
        d["kind"]
        for d in sources.k8s_documents()
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "migrate"
    ]
    assert selected == ["Job"]
    assert (
        "-l app.kubernetes.io/component=migrate"
        in (sources.ROOT / "docs/operations.md").read_text()
    )
