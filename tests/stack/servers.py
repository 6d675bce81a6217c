"""
Jaeger and the collector as loopback subprocesses, run with the deploy/ configs as they are.

Only addresses change: both configs read every endpoint from ``${env:NAME:-default}``, and these
helpers set those variables to free loopback ports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.stack import gobuild, packaged
from tests.stack.cache import DEPLOY, free_port

STOP_TIMEOUT_S = 3.0
START_TIMEOUT_S = 60.0


@dataclass
class Server:
    """A started program, its loopback ports and its log; ``stop()`` always reaps it."""

    name: str
    command: list[str]
    env: dict[str, str]
    health_url: str
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self, attempts: int = 5) -> Server:
        """
        Start and wait until healthy. A port free when picked can be taken before the program binds it (other
        tests, other processes): then the ports are picked again, up to *attempts* times.
        """
        for attempt in range(attempts):
            try:
                return self._start()
            except _PortTaken:
                if attempt == attempts - 1:
                    raise RuntimeError(f"{self.name}: a port was taken {attempts} times:\n{self.log_tail()}") from None
                self._repick_ports()
        raise AssertionError("unreachable")

    def _repick_ports(self) -> None:
        for name, old in list(self.ports.items()):
            new = free_port()
            self.ports[name] = new
            self.env = {key: _swap_port(value, old, new) for key, value in self.env.items()}
            self.command = [_swap_port(argument, old, new) for argument in self.command]
            self.health_url = _swap_port(self.health_url, old, new)

    def _start(self) -> Server:
        log = open(self.log_path, "ab")
        written_before = log.tell()
        self.process = subprocess.Popen(
            self.command, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT, cwd=self.log_path.parent
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                with open(self.log_path, "rb") as output:
                    output.seek(written_before)
                    if b"address already in use" in output.read():
                        raise _PortTaken
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if _answers(self.health_url):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} not healthy at {self.health_url} after {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """
        SIGTERM, then SIGKILL after a few seconds: a collector whose backend is gone keeps retrying its queue
        on a graceful shutdown (10 s of every such teardown before), and no test needs that drain.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class _PortTaken(Exception):
    """The program could not bind one of its ports."""


def _swap_port(value: str, old: int, new: int) -> str:
    """*value* (an address, a URL or a bare port) with port *old* replaced by *new*."""
    if value == str(old):
        return str(new)
    return re.sub(rf":{old}\b", f":{new}", value)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def get_json(url: str, timeout: float = 5.0) -> Any:
    """GET *url* and parse the JSON body (raises ``urllib.error.HTTPError`` on 4xx/5xx)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


JAEGER_PORTS = ("otlp_grpc", "otlp_http", "query_http", "query_grpc", "health", "metrics")
COLLECTOR_PORTS = ("otlp_grpc", "otlp_http", "health", "metrics")


def jaeger(
    workdir: Path,
    elasticsearch_url: str | None = None,
    index_prefix: str = "lc-trace",
    ports: dict[str, int] | None = None,
) -> Server:
    """
    Jaeger v2 with ``deploy/jaeger/config.yaml`` on loopback *ports* (``JAEGER_PORTS``; default: free ones; not
    yet started), storing traces in the Elasticsearch at *elasticsearch_url* under *index_prefix* (run
    ``jaeger_es_init`` for that prefix first).

    Without *elasticsearch_url*: the same config with its storage swapped for Jaeger's in-memory one (written
    into *workdir*), for tests of the path into Jaeger rather than of where Jaeger keeps traces.
    """
    ports = dict(ports) if ports is not None else {name: free_port() for name in JAEGER_PORTS}
    env = {
        "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['otlp_grpc']}",
        "JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['otlp_http']}",
        "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{ports['query_http']}",
        "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{ports['query_grpc']}",
        "JAEGER_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "JAEGER_METRICS_HOST": "127.0.0.1",
        "JAEGER_METRICS_PORT": str(ports["metrics"]),
        "JAEGER_UI_CONFIG": str(DEPLOY / "jaeger" / "ui-config.json"),
    }
    config = DEPLOY / "jaeger" / "config.yaml"
    if elasticsearch_url is None:
        settings = yaml.safe_load(config.read_text())
        settings["extensions"]["jaeger_storage"]["backends"]["lc_trace_store"] = {"memory": {"max_traces": 100000}}
        config = workdir / "jaeger-in-memory.yaml"
        config.write_text(yaml.safe_dump(settings))
    else:
        env |= {"JAEGER_ES_URL": elasticsearch_url, "JAEGER_ES_INDEX_PREFIX": index_prefix}
    command = [str(gobuild.jaeger()), "--config", str(config)]
    health = f"http://127.0.0.1:{ports['health']}/status"
    return Server("jaeger", command, env, health, workdir / "jaeger.log", ports)


def jaeger_es_init(arguments: list[str], elasticsearch_url: str, index_prefix: str) -> str:
    """
    Run Jaeger's ``es-rollover`` with the compose ``jaeger-es-init`` service's *arguments*, pointed at
    *elasticsearch_url* with *index_prefix*; returns its output. ``--es.use-ilm`` is turned off: the test
    node (Elasticsearch 7.10.2 OSS) has no ILM, so the indices and aliases are made without a policy.
    """
    command = jaeger_es_init_command(arguments, elasticsearch_url, index_prefix)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def jaeger_es_init_command(arguments: list[str], elasticsearch_url: str, index_prefix: str) -> list[str]:
    """``jaeger_es_init``'s command line (the compose *arguments* moved to *elasticsearch_url*, *index_prefix*)."""
    command = [str(gobuild.jaeger_es_rollover())]
    for argument in arguments:
        if argument.startswith("http://"):
            argument = elasticsearch_url
        elif argument.startswith("--index-prefix="):
            argument = f"--index-prefix={index_prefix}"
        elif argument.startswith("--es.use-ilm="):
            argument = "--es.use-ilm=false"
        command.append(argument)
    return command


def collector(
    workdir: Path,
    jaeger_otlp_grpc: str,
    mode: str = "direct",
    env: dict[str, str] | None = None,
    name: str = "",
    ports: dict[str, int] | None = None,
) -> Server:
    """
    The collector with ``deploy/otel-collector/config.yaml`` and the overlay of *mode* (``direct``,
    ``tail-sampling``, ``scale``: compose's ``LC_TRACE_COLLECTOR_MODE``) on loopback *ports*
    (``COLLECTOR_PORTS``; default: free ones), exporting to *jaeger_otlp_grpc*; *env* sets the configs' other
    variables (sampling knobs, the scale tier's sampler addresses, VictoriaMetrics' address).
    """
    ports = dict(ports) if ports is not None else {name: free_port() for name in COLLECTOR_PORTS}
    variables = {
        "OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['otlp_grpc']}",
        "OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['otlp_http']}",
        "HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "COLLECTOR_METRICS_HOST": "127.0.0.1",
        "COLLECTOR_METRICS_PORT": str(ports["metrics"]),
        "JAEGER_OTLP_ENDPOINT": jaeger_otlp_grpc,
        **(env or {}),
    }
    folder = DEPLOY / "otel-collector"
    command = [str(gobuild.collector()), f"--config={folder / 'config.yaml'}", f"--config={folder / mode}.yaml"]
    health = f"http://127.0.0.1:{ports['health']}/"
    label = name or f"otel-collector-{mode}"
    return Server(label, command, variables, health, workdir / f"{label}.log", ports)


def victoriametrics(workdir: Path, port: int | None = None) -> Server:
    """
    VictoriaMetrics as compose runs it (not yet started): the service's flags, its address moved to loopback
    *port* (default: a free one), its data into *workdir*, its dashboards read from deploy/victoriametrics/dashboards.
    """
    port = port or free_port()
    moved = {
        "-httpListenAddr": f"127.0.0.1:{port}",
        "-storageDataPath": str(workdir / "storage"),
        "-vmui.customDashboardsPath": str(DEPLOY / "victoriametrics" / "dashboards"),
    }
    flags = []
    for flag in packaged.compose_config()["services"]["victoriametrics"]["command"]:
        name, _, value = flag.partition("=")
        flags.append(f"{name}={moved.get(name, value)}")
    command = [str(gobuild.victoriametrics()), *flags]
    health = f"http://127.0.0.1:{port}/health"
    return Server("victoriametrics", command, {}, health, workdir / "victoriametrics.log", {"http": port})


def victoriametrics_api(server: Server, path: str, **params: str) -> Any:
    """
    The JSON answer of VictoriaMetrics' HTTP API at *path* (``/api/v1/query`` ...), asserted successful. What the
    store has taken in is made searchable first (``/internal/force_flush``): otherwise it shows up ~10 s later.
    """
    with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['http']}/internal/force_flush", timeout=5):
        pass
    url = f"http://127.0.0.1:{server.ports['http']}{path}?{urllib.parse.urlencode(params)}"
    body = get_json(url)
    assert "success" == body.get("status", "success"), body
    return body
