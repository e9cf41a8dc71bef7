"""What the deployment files may refer to, read from the code itself: the environment variables
each program reads, its CLI commands, its HTTP routes and port, and the deployment files parsed.

Nothing here is a hand-written list of names: a variable is known because calling the
program's settings loader reads it, a command because click resolves it, a path because the
Flask app routes it.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import click
import yaml

from payment_service.settings import Settings
from shared_contracts.signing import generate_secret

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"


class RecordingEnv(dict[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: Mapping[str, str] = ()) -> None:  # type: ignore[assignment]
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


# -- environment variables -----------------------------------------------------------------


_CONF_PROBE = """
import json, os, runpy, sys
import payment_service.logging, payment_service.server, payment_service.settings
from gunicorn.config import KNOWN_SETTINGS
sys.path.insert(0, {root!r})
from tests.deploy.sources import RecordingEnv
os.environ = RecordingEnv(os.environ)
ns = runpy.run_path({conf!r})
names = {{setting.name for setting in KNOWN_SETTINGS}}
def show(value):
    if isinstance(value, type):
        return value.__module__ + "." + value.__qualname__
    return value
from pathlib import Path
print(json.dumps({{
    "read": sorted(os.environ.read),
    "settings": {{k: show(v) for k, v in ns.items() if k in names}},
    "not_gunicorn_settings": sorted(set(ns["options_for"](os.environ, 1)) - names),
    "cpus": ns["available_cpus"](),
    "cpus_for": {{d: ns["available_cpus"](Path(d)) for d in {cgroups!r}}},
}}))
"""


def run_gunicorn_conf(
    env: Mapping[str, str], cgroups: Iterable[str] = ()
) -> subprocess.CompletedProcess[str]:
    script = _CONF_PROBE.format(root=str(ROOT), conf=str(GUNICORN_CONF), cgroups=list(cgroups))
    return subprocess.run(
        [sys.executable, "-c", script], env=dict(env), capture_output=True, text=True,
        timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip


def load_gunicorn_conf(env: Mapping[str, str], cgroups: Iterable[str] = ()) -> dict[str, Any]:
    """Run deploy/gunicorn.conf.py as gunicorn would (in a child process: it configures
    logging), with ``env`` as the environment: what it read, the gunicorn settings it made,
    the CPUs it counted (and would count under each of ``cgroups``)."""
    done = run_gunicorn_conf(env, cgroups)
    if done.returncode != 0:
        raise AssertionError(f"gunicorn.conf.py failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


def payment_env_names(tmp_path: Path) -> frozenset[str]:
    """Every variable the payment service's processes read: Settings.from_env (api, worker,
    migrations) and deploy/gunicorn.conf.py (the api's server)."""
    env = RecordingEnv({"PAYMENT_DATABASE_URL": f"sqlite:///{tmp_path}/names.db"})
    Settings.from_env(env)
    conf = load_gunicorn_conf(
        {"PATH": "/usr/bin:/bin", "PAYMENT_DATABASE_URL": f"sqlite:///{tmp_path}/names.db"}
    )
    return frozenset(env.read | set(conf["read"]))


def platform_env_names(tmp_path: Path) -> frozenset[str]:
    """Every variable the reference platform reads (its settings loader, both credential paths)."""
    from platform_client.demo.settings import ConfigError as PlatformConfigError
    from platform_client.demo.settings import DemoSettings

    read: set[str] = set()
    merchant_file = tmp_path / "merchant.json"
    merchant_file.write_text(json.dumps({"apiKey": "sk_x", "signingSecret": generate_secret()}))
    for values in (
        {"PLATFORM_MERCHANT_FILE": str(merchant_file)},
        {"PLATFORM_API_KEY": "sk_x", "PLATFORM_SIGNING_SECRETS": generate_secret()},
    ):
        env = RecordingEnv(values)
        with contextlib.suppress(PlatformConfigError):
            DemoSettings.from_env(env)
        read |= env.read
    return frozenset(read)


def unknown_names(names: Iterable[str], known: frozenset[str]) -> set[str]:
    return set(names) - known


def check_payment_settings(env: Mapping[str, str]) -> Settings:
    """The service's own validation of an environment; raises ConfigError like a start would."""
    return Settings.from_env(dict(env))


# -- commands ------------------------------------------------------------------------------


def resolve_command(group: click.Group, args: list[str]) -> click.Command:
    """The click command ``args`` runs, with its options parsed as click would (an unknown
    command or option raises click.UsageError)."""
    command: click.Command = group
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        found = command.get_command(click.Context(command), rest[0])
        if found is None:
            raise click.UsageError(f"no command {rest[0]!r} in {command.name!r}")
        command, rest = found, rest[1:]
    if isinstance(command, click.Group):
        raise click.UsageError(f"{args} names a group, not a command")
    command.make_context(command.name, rest, resilient_parsing=False)
    return command


def check_service_command(argv: list[str]) -> None:
    """A container command of ours: the payment-service CLI, the platform's, or the gunicorn
    line the image runs by default."""
    from payment_service.cli import cli as payment_cli
    from platform_client.demo.cli import cli as platform_cli

    if argv[:1] == ["payment-service"]:
        resolve_command(payment_cli, argv[1:])
    elif argv[:3] == ["python", "-m", "platform_client.demo"]:
        resolve_command(platform_cli, argv[3:])
    elif argv != dockerfile_cmd():
        raise AssertionError(f"{argv} is none of our commands")


# -- the HTTP app --------------------------------------------------------------------------


def app_routes(tmp_path: Path) -> set[str]:
    """The paths the payment service routes, from an app built by create_app."""
    from payment_service import close_app, create_app

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/routes.db",
        sandbox_database_url=f"sqlite:///{tmp_path}/routes-sandbox.db",
    )
    app = create_app(settings)
    try:
        return {rule.rule for rule in app.url_map.iter_rules()}
    finally:
        close_app(app)


def app_port() -> int:
    """The port the API listens on in containers: the one gunicorn.conf.py binds."""
    text = GUNICORN_CONF.read_text()
    match = re.search(r"^PORT = (\d+)$", text, re.MULTILINE)
    assert match, "gunicorn.conf.py has no PORT"
    return int(match.group(1))


# -- the files -----------------------------------------------------------------------------


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def dockerfile_cmd() -> list[str]:
    commands = re.findall(r"^CMD (\[.*\])$", dockerfile(), re.MULTILINE)
    assert len(commands) == 1, commands
    return list(json.loads(commands[0]))


def dockerfile_user() -> str:
    users = re.findall(r"^USER (\S+)$", dockerfile(), re.MULTILINE)
    assert users, "the Dockerfile sets no USER"
    return str(users[-1])


@cache
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


def interpolated(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` with compose's ${NAME}, ${NAME:?message} and ${NAME:-default} filled in."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, dict):
        return {k: interpolated(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolated(v, values) for v in value]
    return value


def interpolation_names() -> set[str]:
    return set(_INTERPOLATION.findall((DEPLOY / "compose.yaml").read_text()))


def k8s_documents() -> list[dict[str, Any]]:
    """Every Kubernetes object in deploy/k8s (the example Secret included)."""
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append({**document, "_file": path.name})
    return documents


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == kind}
