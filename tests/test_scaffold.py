"""``ai-spine new``: every template makes a project that installs, passes its own tests, serves,
and whose Dockerfile and Kubernetes files point at routes that answer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import venv
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from ai_spine_tools.cli import main
from ai_spine_tools.cli._scaffold import TEMPLATES, render_project
from ai_spine_tools.exceptions import ToolDefinitionError
from serverproc import free_port

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = ROOT / "src" / "ai_spine_tools" / "templates"
BUILT = [
    name for name in TEMPLATES if (TEMPLATE_DIR / name / "src" / "my_tool" / "tool.py").exists()
]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with this SDK's working tree (and its extras) installed."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[redis,postgres]",
            "pytest",
            "pytest-asyncio",
        ],
        check=True,
        timeout=600,
    )
    return home


@pytest.mark.slow
@pytest.mark.parametrize("template", BUILT)
def test_a_generated_project_passes_its_tests_and_serves(
    template: str, fresh_venv: Path, tmp_path: Path
) -> None:
    name = f"{template}-demo"
    project = render_project(name, template=template, directory=tmp_path / name, git=False)
    package = name.replace("-", "_")
    python = fresh_venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(project)],
        check=True,
        timeout=300,
    )
    service_env = {**os.environ, **_services(template, name)}
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=service_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr

    dockerfile = (project / "Dockerfile").read_text()
    command = _json_after(r"^CMD (\[.*\])$", dockerfile)
    healthcheck = _json_after(r"CMD (\[\"python\".*\])$", dockerfile)
    deployment = yaml.safe_load((project / "k8s" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == command == ["ai-spine", "serve", f"src/{package}/tool.py"]

    port = free_port()
    env = {**service_env, "PORT": str(port), "HOST": "127.0.0.1"}
    server = subprocess.Popen(
        [str(fresh_venv / "bin" / command[0]), *command[1:]],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, server)
        example = httpx.get(f"{base}/schema").json()["paths"]["/api/execute"]["post"][
            "requestBody"
        ]["content"]["application/json"]["example"]
        reply = httpx.post(f"{base}/api/execute", json=example, timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "success"
        for probe in ("livenessProbe", "readinessProbe"):
            assert httpx.get(base + container[probe]["httpGet"]["path"]).status_code == 200
        docker_health = subprocess.run(
            [str(python), *healthcheck[1:]], env=env, timeout=30, check=False
        )
        assert docker_health.returncode == 0
    finally:
        server.terminate()
        server.wait(20)


def _services(template: str, name: str) -> dict[str, str]:
    """The environment each template's project needs here: local services, never the internet."""
    if template == "database":
        return {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test"}
    if template == "cached":
        prefix = f"scaffold-{name}-{os.getpid()}:"
        return {"REDIS_URL": "redis://127.0.0.1:6379/0", "AI_SPINE_REDIS_PREFIX": prefix}
    if template == "http-api":
        return {"WEATHER_API_URL": _forecast_stub()}
    return {}


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
    from ai_spine_tools._settings import DOCUMENTED_SETTINGS

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
