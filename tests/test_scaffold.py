"""``ai-spine new``: from the built wheel, every template makes a project whose ``make test``
passes in a clean shell, whose README's ``make serve`` (with ``.env``) and curls work as written,
and whose Dockerfile and Kubernetes files point at routes that answer."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from ai_spine_tools.cli import main
from ai_spine_tools.cli._scaffold import TEMPLATES, render_project, sdk_requirement
from ai_spine_tools.exceptions import ToolDefinitionError
from serverproc import free_port

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = ROOT / "src" / "ai_spine_tools" / "templates"
BUILT = [
    name for name in TEMPLATES if (TEMPLATE_DIR / name / "src" / "my_tool" / "tool.py").exists()
]


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SDK as a user gets it: ``scripts/build`` (sdist and wheel, their checks, and the
    smoke), then that wheel in a fresh virtual environment (the smoke's, kept)."""
    scratch = tmp_path_factory.mktemp("release")
    home = scratch / "user-venv"
    built = subprocess.run(
        [str(ROOT / "scripts" / "build"), "--outdir", str(scratch / "dist"), "--venv", str(home)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "contents ok" in built.stdout
    return home


@pytest.fixture(scope="module")
def project_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the generated Makefiles install (VENV=...): made by the first ``make``, shared by
    the projects after it, each installing itself once."""
    return tmp_path_factory.mktemp("projects") / "venv"


def clean_environment(**extra: str) -> dict[str, str]:
    """A shell with none of this suite's virtual environment, settings or test variables."""
    path = [
        part
        for part in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        if part and not Path(part, "activate").exists()
    ]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AI_SPINE_", "PYTEST", "REDIS_", "DATABASE_", "WEATHER_"))
        and key not in ("VIRTUAL_ENV", "PYTHONPATH", "PORT", "HOST")
    }
    return {**env, "PATH": os.pathsep.join(path), **extra}


@pytest.mark.slow
@pytest.mark.parametrize("template", BUILT)
def test_a_new_project_from_the_wheel_passes_make_test_and_its_readme(
    template: str, user_venv: Path, project_venv: Path, tmp_path: Path
) -> None:
    name = f"{template}-demo-{os.getpid()}"
    package = name.replace("-", "_")
    made = subprocess.run(
        [str(user_venv / "bin" / "ai-spine"), "new", name, "--template", template, "--dir",
         str(tmp_path / name), "--no-git"],
        env=clean_environment(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    project = tmp_path / name
    wheel = next((user_venv.parent / "dist").glob("*.whl"))
    assert f"@ {wheel.as_uri()}" in (project / "pyproject.toml").read_text()

    services = _services(template)
    tests = subprocess.run(
        ["make", "test", f"VENV={project_venv}"],
        cwd=project,
        env=clean_environment(**services),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"\d+ passed", tests.stdout), tests.stdout
    assert "skipped" not in tests.stdout, tests.stdout  # every service it needs was given
    needed = {"database": "DATABASE_URL", "cached": "REDIS_URL"}.get(template)
    if needed is not None:  # without it, the tests that need it skip and name it
        alone = subprocess.run(
            [str(project_venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider"],
            cwd=project,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert alone.returncode == 0, alone.stdout + alone.stderr
        assert re.search(rf"SKIPPED .*set {needed}", alone.stdout), alone.stdout

    # The README as written: cp .env.example .env, make serve, then each curl it shows.
    port = free_port()
    env_file = (project / ".env.example").read_text() + f"PORT={port}\nHOST=127.0.0.1\n"
    env_file += "".join(f"{key}={value}\n" for key, value in services.items())
    (project / ".env").write_text(env_file)
    server = subprocess.Popen(
        ["make", "serve", f"VENV={project_venv}"],
        cwd=project,
        env=clean_environment(),  # settings come from .env alone
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, server)
        curls = re.findall(r"^curl .*$", (project / "README.md").read_text(), re.MULTILINE)
        assert len(curls) == 3, curls
        for line in curls:
            command = line.split("  #")[0].replace("localhost:3000", f"localhost:{port}")
            done = subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True
            )
            answer = json.loads(done.stdout)
            if "/api/execute" in command:
                assert answer["status"] == "success", answer

        dockerfile = (project / "Dockerfile").read_text()
        command = _json_after(r"^CMD (\[.*\])$", dockerfile)
        healthcheck = _json_after(r"CMD (\[\"python\".*\])$", dockerfile)
        deployment = yaml.safe_load((project / "k8s" / "deployment.yaml").read_text())
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == command == ["ai-spine", "serve", f"src/{package}/tool.py"]
        for probe in ("livenessProbe", "readinessProbe"):
            assert httpx.get(base + container[probe]["httpGet"]["path"]).status_code == 200
        docker_health = subprocess.run(
            [str(project_venv / "bin" / "python"), *healthcheck[1:]],
            env=clean_environment(PORT=str(port)),
            timeout=30,
            check=False,
        )
        assert docker_health.returncode == 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        if template == "database":
            _drop_table(services["DATABASE_URL"], f"{package}_cities")


def _services(template: str) -> dict[str, str]:
    """The environment each template's project needs here: local services, never the internet."""
    if template == "database":
        return {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test"}
    if template == "cached":
        prefix = f"scaffold-{os.getpid()}:"
        return {"REDIS_URL": "redis://127.0.0.1:6379/0", "AI_SPINE_REDIS_PREFIX": prefix}
    if template == "http-api":
        return {"WEATHER_API_URL": _forecast_stub()}
    return {}


def _drop_table(dsn: str, table: str) -> None:
    """Drop the table the served tool created (the project's tests drop their own)."""
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f"DROP TABLE IF EXISTS {table}")
        finally:
            await connection.close()

    asyncio.run(drop())


class _Forecast(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"current": {"temperature_2m": 20.0, "wind_speed_10m": 1.0}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _forecast_stub() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forecast)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1/forecast"


def _json_after(pattern: str, text: str) -> list[str]:
    found = re.search(pattern, text, re.MULTILINE)
    assert found is not None, pattern
    value: list[str] = json.loads(found.group(1))
    return value


def _wait_healthy(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "the generated project's server exited"
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the generated project's server did not start")


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_kubernetes_files_parse_and_agree(template: str, tmp_path: Path) -> None:
    project = render_project("k8s-check", template=template, directory=tmp_path / "p", git=False)
    documents = [
        document
        for path in sorted((project / "k8s").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
    ]
    kinds = {document["kind"] for document in documents}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= kinds
    deployment = next(
        d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "k8s-check"
    )
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["resources"]["limits"]["memory"]
    grace = next(
        int(e["value"]) for e in container["env"] if e["name"] == "AI_SPINE_SHUTDOWN_GRACE"
    )
    assert pod["terminationGracePeriodSeconds"] > grace + 5  # preStop sleep + drain fit inside
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = next(d for d in documents if d["kind"] == "HorizontalPodAutoscaler")
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}


def test_env_example_lists_every_setting(tmp_path: Path) -> None:
    from ai_spine_tools._variables import DOCUMENTED_SETTINGS

    project = render_project("env-check", directory=tmp_path / "p", git=False)
    text = (project / ".env.example").read_text()
    for variable, _, _ in DOCUMENTED_SETTINGS:
        assert f"# {variable}=" in text


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Bad Name", "invalid project name"),
        ("1tool", "invalid project name"),
        ("tool--x", "invalid project name"),
        ("-tool", "invalid project name"),
        ("x" * 70, "invalid project name"),
        ("../escape", "invalid project name"),
    ],
)
def test_invalid_names_are_refused(name: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ToolDefinitionError, match=message):
        render_project(name, directory=tmp_path / "p", git=False)


def test_an_existing_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "keep.txt").write_text("mine")
    with pytest.raises(ToolDefinitionError, match="not empty"):
        render_project("taken", directory=tmp_path / "p", git=False)
    assert (tmp_path / "p" / "keep.txt").read_text() == "mine"


def test_cli_new_creates_a_git_repository(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new", "cli-made", "--dir", str(tmp_path / "c"), "--yes"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / ".git").is_dir()
    assert (tmp_path / "c" / "src" / "cli_made" / "tool.py").is_file()


def test_cli_new_refuses_an_unknown_template(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["new", "x-tool", "--template", "nope", "--dir", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "nope" in result.output


def test_check_and_schema_commands_on_a_generated_project(tmp_path: Path) -> None:
    project = render_project("checked", directory=tmp_path / "p", git=False)
    target = str(project / "src" / "checked" / "tool.py")
    checked = CliRunner().invoke(main, ["check", target])
    assert checked.exit_code == 0, checked.output
    assert "0 problem(s)" in checked.output
    printed = CliRunner().invoke(main, ["schema", target, "--format", "json-schema"])
    assert json.loads(printed.output)["required"] == ["text"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (">=0.2,<0.3", "ai-spine-tools[redis]>=0.2,<0.3"),
        ("ai-spine-tools==0.2.1", "ai-spine-tools[redis]==0.2.1"),
        ("ai_spine_tools[mcp] @ file:///w/x.whl", "ai-spine-tools[mcp,redis] @ file:///w/x.whl"),
        (
            "git+https://github.com/example/ai-spine-tools@v0.2",
            "ai-spine-tools[redis] @ git+https://github.com/example/ai-spine-tools@v0.2",
        ),
        ("https://example.com/x.whl", "ai-spine-tools[redis] @ https://example.com/x.whl"),
    ],
)
def test_sdk_spec_forms(spec: str, expected: str) -> None:
    assert sdk_requirement("[redis]", spec) == expected


def test_sdk_spec_of_a_local_wheel_or_source_is_a_file_url(tmp_path: Path) -> None:
    wheel = tmp_path / "ai_spine_tools-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert sdk_requirement("", str(wheel)) == f"ai-spine-tools @ {wheel.as_uri()}"
    assert sdk_requirement("", str(ROOT)) == f"ai-spine-tools @ {ROOT.as_uri()}"


@pytest.mark.parametrize("spec", ["", "nonsense", "/no/such/dir"])
def test_a_bad_sdk_spec_is_refused_and_nothing_is_written(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ToolDefinitionError, match="--sdk"):
        render_project("p", directory=tmp_path / "p", git=False, sdk=spec)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("direct_url", "expected"),
    [
        ({"url": "file:///w/ai_spine_tools-0.1.0-py3-none-any.whl", "archive_info": {}},
         "file:///w/ai_spine_tools-0.1.0-py3-none-any.whl"),
        ({"url": "file:///src/ai-spine-tools", "dir_info": {"editable": True}},
         "file:///src/ai-spine-tools"),
        ({"url": "https://github.com/o/r", "vcs_info": {"vcs": "git", "commit_id": "abc123",
          "requested_revision": "main"}}, "git+https://github.com/o/r@abc123"),
        ({"url": "https://github.com/o/r", "subdirectory": "py",
          "vcs_info": {"vcs": "git", "commit_id": "abc123"}},
         "git+https://github.com/o/r@abc123#subdirectory=py"),
    ],
)  # fmt: skip
def test_the_sdk_is_referenced_as_pep_610_says_it_was_installed(
    direct_url: dict[str, Any], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        importlib.metadata, "distribution", lambda name: _Installed(json.dumps(direct_url))
    )
    assert sdk_requirement("[postgres]") == f"ai-spine-tools[postgres] @ {expected}"


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.1.0", ">=0.1.0,<0.2"), ("1.4.2", ">=1.4.2,<2"), ("0.12.3rc1", ">=0.12.3rc1,<0.13")],
)
def test_an_sdk_from_an_index_is_a_compatible_range(
    version: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: _Installed(None, version))
    assert sdk_requirement() == f"ai-spine-tools{expected}"


class _Installed:
    """What importlib.metadata says of an installed ai-spine-tools."""

    def __init__(self, direct_url: str | None, version: str = "0.1.0") -> None:
        self.direct_url, self.version = direct_url, version

    def read_text(self, name: str) -> str | None:
        return self.direct_url if name == "direct_url.json" else None


def test_cli_new_says_what_the_project_depends_on(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "new",
            "pinned",
            "--dir",
            str(tmp_path / "p"),
            "--yes",
            "--no-git",
            "--sdk",
            "ai-spine-tools==0.1.0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "depends on ai-spine-tools==0.1.0" in result.output
    pyproject = (tmp_path / "p" / "pyproject.toml").read_text()
    assert 'dependencies = ["ai-spine-tools==0.1.0"]' in pyproject
    assert '"ai-spine-tools[testing]==0.1.0"' in pyproject


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_the_readme_curl_sends_an_input_the_tool_accepts(template: str, tmp_path: Path) -> None:
    from ai_spine_tools.core._loader import load_tools

    name = f"curl-{template}"
    project = render_project(name, template=template, directory=tmp_path / name, git=False)
    readme = (project / "README.md").read_text()
    body = re.search(r"-d '(\{.*\})'", readme)
    assert body is not None
    tools = load_tools(str(project / "src" / name.replace("-", "_") / "tool.py"))
    url = re.search(r"localhost:3000(\S*)/api/execute", readme)  # a suite's: /<name>/...
    assert url is not None
    prefix = url.group(1).strip("/")
    (tool,) = [one for one in tools if len(tools) == 1 or one.name == prefix]
    values = tool.input_schema.validate(json.loads(body.group(1))["input_data"])
    assert values
