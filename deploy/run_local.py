"""
The stack without Docker: an Elasticsearch node, Jaeger (its traces in that node), VictoriaMetrics and the
OpenTelemetry Collector, run on this machine with the deploy/ configs as they are, on compose's loopback
ports, until Ctrl-C.

    python deploy/run_local.py                   # build what is missing (minutes, once), start all, wait
    python deploy/run_local.py --print           # the command lines and variables (built first if missing)
    python deploy/run_local.py --only collector --any-ports

Run it from a checkout of lc_trace: the programs are built and started by the code the end-to-end tests
use (``tests/stack``: the collector, Jaeger and VictoriaMetrics from Go modules, the Elasticsearch 7.10.2
node from Maven Central, cached in ``~/.cache/lc_trace/stack``), so it needs Go, a JDK 11+, Maven and
PyYAML (``pip install -e '.[test]'``). docs/deploy.md says what each program gets, and why.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tests/stack

import yaml  # noqa: E402

from tests.stack import elasticsearch, gobuild, servers  # noqa: E402
from tests.stack.cache import DEPLOY, free_port  # noqa: E402

PROGRAMS = ("elasticsearch", "jaeger", "victoriametrics", "collector")  # in start order
INDEX_PREFIX = "lc-trace"
# Compose's published ports, where the README sends apps and people. On one host Jaeger's own OTLP, health
# and metrics ports must differ from the collector's (in compose each has its own container).
PORTS: dict[str, dict[str, int]] = {
    "elasticsearch": {"http": 9200},
    "jaeger": {
        "query_http": 16686,
        "query_grpc": 16685,
        "otlp_grpc": 14317,
        "otlp_http": 14318,
        "health": 14133,
        "metrics": 14269,
    },  # fmt: skip
    "victoriametrics": {"http": 8428},
    "collector": {"otlp_grpc": 4317, "otlp_http": 4318, "health": 13133, "metrics": 8888},
}


def compose_service(name: str) -> dict[str, Any]:
    """One service of docker-compose.yml as written (``${VAR:-default}`` left for ``resolve``)."""
    service: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]
    return service


def resolve(value: str) -> str:
    """*value* with compose's ``${VAR:-default}`` taken from the environment, else its default."""
    while "${" in value:
        start = value.index("${")
        end = value.index("}", start)
        name, _, default = value[start + 2 : end].partition(":-")
        value = value[:start] + os.environ.get(name, default) + value[end + 1 :]
    return value


class Stack:
    """The chosen programs, on their ports, with their logs and data in *workdir*."""

    def __init__(self, workdir: Path, only: tuple[str, ...], ports: dict[str, dict[str, int]], mode: str) -> None:
        self.workdir = workdir
        self.only = only
        self.ports = ports
        self.mode = mode
        self.elasticsearch_url = f"http://127.0.0.1:{ports['elasticsearch']['http']}"

    def es_init_command(self) -> list[str]:
        """
        Jaeger's ``es-rollover`` with the compose ``jaeger-es-init`` service's arguments, here with
        ``--es.use-ilm=false``: the node is the OSS 7.10.2 build, which has no index lifecycle management.
        """
        arguments = compose_service("jaeger-es-init")["command"]
        return servers.jaeger_es_init_command(arguments, self.elasticsearch_url, INDEX_PREFIX)

    def jaeger(self) -> servers.Server:
        """Jaeger v2 storing in the node, or (``--only`` without elasticsearch) in its own memory."""
        url = self.elasticsearch_url if "elasticsearch" in self.only else None
        return servers.jaeger(self.workdir, url, INDEX_PREFIX, ports=self.ports["jaeger"])

    def victoriametrics(self) -> servers.Server:
        """VictoriaMetrics with the compose service's flags, its address, data and dashboards moved here."""
        port = self.ports["victoriametrics"]["http"]
        moved = {
            "-httpListenAddr": f"127.0.0.1:{port}",
            "-storageDataPath": str(self.workdir / "victoriametrics"),
            "-vmui.customDashboardsPath": str(DEPLOY / "victoriametrics" / "dashboards"),
        }
        flags = []
        for flag in compose_service("victoriametrics")["command"]:
            name, _, value = flag.partition("=")
            flags.append(f"{name}={moved.get(name, resolve(value))}")
        command = [str(gobuild.victoriametrics()), *flags]
        health = f"http://127.0.0.1:{port}/health"
        return servers.Server(
            "victoriametrics", command, {}, health, self.workdir / "victoriametrics.log", {"http": port}
        )

    def collector(self) -> servers.Server:
        """The collector in *mode*, sending traces to Jaeger and metrics to VictoriaMetrics on their ports."""
        env = {
            "VICTORIAMETRICS_OTLP_ENDPOINT": f"http://127.0.0.1:{self.ports['victoriametrics']['http']}/opentelemetry"
        }
        if self.mode != "direct":  # the compose service's sampling knobs, from the environment or their defaults
            for entry in compose_service("otel-collector")["environment"]:
                name, _, value = entry.partition("=")
                env[name] = resolve(value)
        jaeger = f"127.0.0.1:{self.ports['jaeger']['otlp_grpc']}"
        return servers.collector(self.workdir, jaeger, self.mode, env, ports=self.ports["collector"])

    def server(self, name: str) -> servers.Server:
        server: servers.Server = getattr(self, name)()
        return server


def shell_line(server: servers.Server) -> str:
    """*server* as one shell line: its variables, then its command."""
    variables = [f"{name}={shlex.quote(value)}" for name, value in sorted(server.env.items())]
    return " ".join([*variables, shlex.join(server.command)])


def print_plan(stack: Stack) -> None:
    """What ``run`` starts, in order, as shell lines (the Go programs are built first if they are missing)."""
    for name in stack.only:
        print(f"# {name}")
        if name == "elasticsearch":
            print(f"# the Elasticsearch {elasticsearch.VERSION} node (tests/stack/elasticsearch.py) on "
                  f"{stack.elasticsearch_url}, its data in {stack.workdir / 'elasticsearch'}; then")  # fmt: skip
            print(shlex.join(stack.es_init_command()))
        else:
            print(shell_line(stack.server(name)))


def run(stack: Stack, attempts: int) -> int:
    """Start every chosen program, say where it listens, and stop them all on Ctrl-C or SIGTERM."""
    stack.workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(0))  # leave through the ExitStack below
    with ExitStack() as started:
        for name in stack.only:
            if name == "elasticsearch":
                port = stack.ports[name]["http"]
                node = elasticsearch.start(stack.workdir / "elasticsearch", http_port=port)
                started.callback(node.stop)
                setup_logs_index(node.url)
                subprocess.run(stack.es_init_command(), check=True)
                print(f"ready: elasticsearch {node.url} (log {node.log_path})", flush=True)
                continue
            server = stack.server(name)
            started.callback(server.stop)
            server.start(attempts)
            print(f"ready: {name} {server.health_url} (log {server.log_path})", flush=True)
        ports = stack.ports
        addresses = {
            "OTLP gRPC": f"127.0.0.1:{ports['collector']['otlp_grpc']}",
            "OTLP HTTP": f"127.0.0.1:{ports['collector']['otlp_http']}",
            "Jaeger UI": f"http://127.0.0.1:{ports['jaeger']['query_http']}",
            "vmui": f"http://127.0.0.1:{ports['victoriametrics']['http']}/vmui",
            "Elasticsearch": stack.elasticsearch_url,
        }
        print(f"ready: {', '.join(stack.only)}; Ctrl-C stops them", flush=True)
        for what, where in addresses.items():
            print(f"  {what:<14} {where}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


def setup_logs_index(url: str) -> None:
    """deploy/setup/setup.sh's Elasticsearch part (log index template, first index, write alias), where curl is."""
    if shutil.which("curl") is None:
        print("curl not found: deploy/setup/setup.sh skipped (the log index template, for Filebeat)", flush=True)
        return
    subprocess.run(
        ["sh", str(DEPLOY / "setup" / "setup.sh")],
        env={**os.environ, "ELASTICSEARCH_URL": url, "KIBANA_URL": ""},
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", action="store_true", help="print the command lines and variables; start nothing")
    parser.add_argument("--only", default=",".join(PROGRAMS), help=f"a comma-separated subset of {','.join(PROGRAMS)}")
    parser.add_argument("--any-ports", action="store_true", help="free loopback ports instead of compose's")
    mode = os.environ.get("LC_TRACE_COLLECTOR_MODE", "direct")
    parser.add_argument("--mode", choices=["direct", "tail-sampling"], default=mode,
                        help="the collector's overlay, as LC_TRACE_COLLECTOR_MODE picks it in compose")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=Path("lc_trace_stack"), help="logs and data (./lc_trace_stack)")
    args = parser.parse_args(argv)
    chosen = {name.strip() for name in args.only.split(",") if name.strip()}
    if not chosen or chosen - set(PROGRAMS):
        parser.error(f"--only takes names from {', '.join(PROGRAMS)}; got {args.only!r}")
    ports = {
        name: {key: free_port() if args.any_ports else port for key, port in numbers.items()}
        for name, numbers in PORTS.items()
    }
    stack = Stack(args.workdir.resolve(), tuple(name for name in PROGRAMS if name in chosen), ports, args.mode)
    if args.print:
        print_plan(stack)
        return 0
    return run(stack, attempts=5 if args.any_ports else 1)


if __name__ == "__main__":
    raise SystemExit(main())
