"""deploy/Dockerfile, read as text: two stages, installs from the lock, non-root, and the
commands every process of the system runs exist in the image it builds."""

from __future__ import annotations

import fnmatch
import re
import tomllib

from tests.deploy import sources


def stages() -> dict[str, str]:
    """Stage name -> its instructions."""
    parts = re.split(r"^FROM ", sources.dockerfile(), flags=re.MULTILINE)[1:]
    named = {}
    for part in parts:
        header, _, body = part.partition("\n")
        match = re.fullmatch(r"(\S+) AS (\w+)", header.strip())
        assert match, f"unnamed stage: FROM {header}"
        named[match.group(2)] = body
    return named


def instructions(stage: str, keyword: str) -> list[str]:
    """Each ``keyword`` instruction of a stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", stages()[stage])
    return re.findall(rf"^{keyword} (.+)$", text, re.MULTILINE)


def test_two_stages_on_one_slim_python():
    assert list(stages()) == ["builder", "runtime"]
    bases = re.findall(r"^FROM (\S+) AS", sources.dockerfile(), re.MULTILINE)
    assert bases == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", sources.dockerfile(), re.MULTILINE).group(1)
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", image), image


def test_the_builder_installs_exactly_the_lock_without_dev_tools():
    runs = instructions("builder", "RUN")
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs and all("--frozen" in run and "--no-dev" in run for run in syncs)
    assert "--no-editable" in syncs[-1]  # the runtime stage gets no source tree
    makefile_uv = re.search(
        r"^UV_VERSION := (\S+)$", (sources.ROOT / "Makefile").read_text(), re.MULTILINE
    )
    assert f"ARG UV_VERSION={makefile_uv.group(1)}" in stages()["builder"]
    # Every package the wheel holds is copied in.
    project = tomllib.loads((sources.ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {copy.split()[0] for copy in instructions("builder", "COPY")}
    assert set(packages) <= copied


def test_the_runtime_runs_as_an_unprivileged_user():
    user = sources.dockerfile_user()
    uid, gid = (int(part) for part in user.split(":"))
    assert uid >= 1000 and gid >= 1000
    runtime = stages()["runtime"]
    assert f"--uid {uid}" in runtime and f"--gid {gid}" in runtime
    # USER comes after the last RUN: nothing runs as root once it is set.
    assert runtime.rindex("\nUSER ") > runtime.rindex("\nRUN ")
    assert "COPY --from=builder /app/.venv /app/.venv" in runtime


def test_the_default_command_is_the_api_server_with_our_gunicorn_settings():
    cmd = sources.dockerfile_cmd()
    assert cmd[:2] == ["gunicorn", "--config"]
    conf, app = cmd[2], cmd[3]
    workdir = instructions("runtime", "WORKDIR")[-1]
    assert f"COPY deploy/gunicorn.conf.py {workdir}/{conf}" in stages()["runtime"]
    module, attribute = app.split(":")
    wsgi = sources.ROOT / (module.replace(".", "/") + ".py")
    assert re.search(rf"^{attribute} = ", wsgi.read_text(), re.MULTILINE)
    assert f"EXPOSE {sources.app_port()}" in stages()["runtime"]
    assert "PATH=/app/.venv/bin:$PATH" in stages()["runtime"]  # payment-service, gunicorn, python


def test_what_the_dockerfile_copies_exists_and_is_in_the_build_context():
    patterns = [
        line.strip()
        for line in (sources.ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def sent(path: str) -> bool:  # .dockerignore: the last matching pattern decides
        included = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern.removeprefix("!").rstrip("/")
            if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
                included = negated
        return included

    copies = instructions("builder", "COPY") + instructions("runtime", "COPY")
    sources_copied = [
        part for copy in copies if not copy.startswith("--from") for part in copy.split()[:-1]
    ]
    assert sources_copied
    for path in sources_copied:
        assert (sources.ROOT / path).exists(), path
        assert sent(path), f"{path} is left out of the build context by .dockerignore"
    assert not sent(".venv") and not sent("tests") and not sent("deploy/.env")
