"""
Jaeger and the collector as loopback subprocesses, run with the deploy/ configs as they are.

Only addresses change: both configs read every endpoint from ``${env:NAME:-default}``, and these
helpers set those variables to free loopback ports.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.stack import gobuild
from tests.stack.cache import DEPLOY, free_port

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

    def start(self) -> Server:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT, cwd=self.log_path.parent
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if _answers(self.health_url):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} not healthy at {self.health_url} after {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


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


def jaeger(workdir: Path) -> Server:
    """Jaeger v2 with ``deploy/jaeger/config.yaml`` on free loopback ports (not yet started)."""
    ports = {name: free_port() for name in ("otlp_grpc", "otlp_http", "query_http", "query_grpc", "health", "metrics")}
    env = {
        "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['otlp_grpc']}",
        "JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['otlp_http']}",
        "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{ports['query_http']}",
        "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{ports['query_grpc']}",
        "JAEGER_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "JAEGER_METRICS_HOST": "127.0.0.1",
        "JAEGER_METRICS_PORT": str(ports["metrics"]),
    }
    command = [str(gobuild.jaeger()), "--config", str(DEPLOY / "jaeger" / "config.yaml")]
    health = f"http://127.0.0.1:{ports['health']}/status"
    return Server("jaeger", command, env, health, workdir / "jaeger.log", ports)


def collector(workdir: Path, jaeger_otlp_grpc: str) -> Server:
    """The collector with ``deploy/otel-collector/config.yaml``, exporting to *jaeger_otlp_grpc*."""
    ports = {name: free_port() for name in ("otlp_grpc", "otlp_http", "health", "metrics")}
    env = {
        "OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['otlp_grpc']}",
        "OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['otlp_http']}",
        "HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{ports['health']}",
        "COLLECTOR_METRICS_HOST": "127.0.0.1",
        "COLLECTOR_METRICS_PORT": str(ports["metrics"]),
        "JAEGER_OTLP_ENDPOINT": jaeger_otlp_grpc,
    }
    command = [str(gobuild.collector()), f"--config={DEPLOY / 'otel-collector' / 'config.yaml'}"]
    health = f"http://127.0.0.1:{ports['health']}/"
    return Server("otel-collector", command, env, health, workdir / "otel-collector.log", ports)
