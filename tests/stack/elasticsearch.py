"""
A real Elasticsearch-API server for the tests, without Docker: Elasticsearch 7.10.2 (Apache-2), embedded.

``install()`` resolves codelibs' ``elasticsearch-cluster-runner`` (which pulls the Elasticsearch server and
its modules from Maven Central) into the stack cache with Maven and compiles ``elasticsearch/EsNode.java``,
a launcher for one node; ``start()`` runs that node on free loopback ports and waits until the cluster is
yellow. Needs a JDK (11+, 17 tested) and Maven on ``PATH`` (or ``JAVA_HOME``). HTTP is plain ``urllib``.

    python -m tests.stack.elasticsearch install     # what CI runs up front (the fixture installs on demand)
    python -m tests.stack.elasticsearch run         # a node for poking at by hand, until Ctrl-C

Elasticsearch 7.10.2 is the last Apache-2 release; the compose stack runs ``ELASTIC_VERSION`` from ``.env``.
What the tests need from it (composable index templates, dotted keys read as objects, mapping types
rejecting a wrong value, term and range queries, sorting on dates) is the same in both.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.stack import cache

VERSION = "7.10.2"
NAME = f"elasticsearch-{VERSION}"
SOURCES = Path(__file__).with_name("elasticsearch")  # pom.xml and EsNode.java, kept in the repository
MARKER = ".installed"  # written last; holds the fingerprint of the sources it was built from
HEAP = "512m"  # plenty for a test index; leaves a 2-core / 24 GB CI box alone
START_TIMEOUT_S = 120.0
JVM_OPTIONS = [
    # From Elasticsearch 7.10's own jvm.options: log4j must not stop before the node does, and no JMX.
    "-Dlog4j.shutdownHookEnabled=false",
    "-Dlog4j2.disable.jmx=true",
    "-Dlog4j2.formatMsgNoLookups=true",
    "-Dfile.encoding=UTF-8",
    "-Djava.awt.headless=true",
    "-Djna.nosys=true",
    "-Dio.netty.noUnsafe=true",
    "-Dio.netty.noKeySetOptimization=true",
    "-Dio.netty.recycler.maxCapacityPerThread=0",
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:TieredStopAtLevel=1",  # C1 only: ready in ~3.2 s instead of 3.6-6.5 s; a test index never needs C2
    "-Xss1m",
]


class ElasticsearchError(RuntimeError):
    """Installing or starting the test node failed; the message says why (with the node's last log lines)."""


# -- install --------------------------------------------------------------------------------------------


def install() -> Path:
    """
    The install folder (``lib/`` with the jars, ``classes/EsNode.class``), built once per version and per
    content of ``pom.xml``/``EsNode.java``; later calls return at once.
    """
    fingerprint = _fingerprint()
    with cache.locked(NAME) as folder:
        marker = folder / MARKER
        if marker.is_file() and marker.read_text().strip() == fingerprint:
            return folder
        marker.unlink(missing_ok=True)
        for part in ("lib", "classes"):
            shutil.rmtree(folder / part, ignore_errors=True)
        with cache.building(f"the Elasticsearch {VERSION} test node (Maven Central)", "1 min", folder):
            _build(folder)
        marker.write_text(fingerprint + "\n")
        return folder


def _build(folder: Path) -> None:
    """Resolve the jars with Maven and compile the launcher into *folder*."""
    _run(
        [
            _tool("mvn", "Maven"),
            "--batch-mode",
            "--quiet",
            "-Dstyle.color=never",
            "--file",
            str(SOURCES / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={folder / 'lib'}",
        ],
        "resolving the Elasticsearch jars with Maven",
        cwd=folder,
    )
    _run(
        [
            _java_tool("javac"),
            "--release",
            "11",
            "-encoding",
            "UTF-8",
            "-d",
            str(folder / "classes"),
            "-cp",
            str(folder / "lib" / "*"),
            str(SOURCES / "EsNode.java"),
        ],
        "compiling EsNode.java",
        cwd=folder,
    )


def _fingerprint() -> str:
    digest = hashlib.sha256(VERSION.encode())
    for name in ("pom.xml", "EsNode.java"):
        digest.update((SOURCES / name).read_bytes())
    return digest.hexdigest()


def _tool(name: str, what: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ElasticsearchError(f"`{name}` not found on PATH: the Elasticsearch test node needs {what}")
    return found


def _java_tool(name: str) -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / name).is_file():
        return str(Path(home) / "bin" / name)
    return _tool(name, "a JDK (11 or newer; 17 is tested), on PATH or in JAVA_HOME")


def _run(command: list[str], what: str, cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-4000:]
        raise ElasticsearchError(f"{what} failed (exit {result.returncode}): {' '.join(command)}\n{output}")


# -- one node -------------------------------------------------------------------------------------------


class ElasticsearchNode:
    """A running node: ``url``, ``request()``, ``stop()``; a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen[bytes], http_port: int, base_dir: Path, log_path: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{http_port}"
        self.base_dir = base_dir
        self.log_path = log_path

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 30.0) -> tuple[int, Any]:
        """
        ``(status, parsed JSON)`` for one call; HTTP errors are returned, not raised. *body*: a dict
        (JSON), a list of dicts (NDJSON, for ``_bulk``), or ``str``/``bytes`` sent as they are.
        """
        data: bytes | None
        content_type = "application/json"
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        elif isinstance(body, list):
            data = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in body).encode()
            content_type = "application/x-ndjson"
        else:
            data = json.dumps(body, ensure_ascii=False).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            with error:
                status, raw = error.code, error.read()
        return status, (json.loads(raw) if raw.strip() else None)

    def log_tail(self, lines: int = 40) -> str:
        """The node's last output lines (its console log), for error messages."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return "".join(deque(log, maxlen=lines))
        except OSError as error:
            return f"(no log: {error})"

    def stop(self, timeout: float = 30.0) -> None:
        """Close the node (SIGTERM, stdin closed); kill it if it has not exited within *timeout* s."""
        atexit.unregister(self.stop)
        process = self.process
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # type: ignore[union-attr]
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        elif process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def __enter__(self) -> ElasticsearchNode:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ElasticsearchNode({self.url}, pid={self.process.pid})"

    def _wait_ready(self, deadline: float) -> None:
        while True:
            if self.process.poll() is not None:
                raise _NodeDied(self.process.returncode)
            try:
                status, health = self.request("GET", "/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=5.0)
                if status == 200 and health.get("status") in ("green", "yellow"):
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass  # not listening yet (refused, reset, half a response)
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.25)


class _NodeDied(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def start(
    tmp_dir: Path, *, heap: str = HEAP, timeout: float = START_TIMEOUT_S, http_port: int | None = None
) -> ElasticsearchNode:
    """
    Install if needed, then start one node with its data, logs and console output under *tmp_dir*, and
    return it once ``/_cluster/health`` is yellow; on loopback *http_port* (default: a free one). The node dies
    with this process (its stdin is our pipe) and is stopped at interpreter exit if nobody called ``stop()``.
    """
    home = install()
    java = _java_tool("java")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    for attempt in range(3):  # a port free when picked can be taken before the node binds it
        port = http_port or cache.free_port()
        transport_port = cache.free_port()
        while transport_port == port:
            transport_port = cache.free_port()
        base_dir = tmp_dir / f"node-{port}"
        (base_dir / "tmp").mkdir(parents=True, exist_ok=True)
        log_path = tmp_dir / f"node-{port}.log"
        command = [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *JVM_OPTIONS,
            f"-Djava.io.tmpdir={base_dir / 'tmp'}",
            "-cp",
            os.pathsep.join([str(home / "lib" / "*"), str(home / "classes")]),
            "EsNode",
            str(port),
            str(transport_port),
            str(base_dir),
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, cwd=base_dir, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT
            )
        node = ElasticsearchNode(process, port, base_dir, log_path)
        atexit.register(node.stop)
        try:
            node._wait_ready(deadline)
            return node
        except _NodeDied as died:
            tail = node.log_tail()
            node.stop()
            if "BindException" in tail and attempt < 2 and http_port is None:
                continue
            raise ElasticsearchError(
                f"the Elasticsearch node exited with code {died.code} before it was ready; "
                f"last lines of {log_path}:\n{tail}"
            ) from None
        except TimeoutError:
            node.stop()
            raise ElasticsearchError(
                f"the Elasticsearch node did not report yellow health on {node.url} within {timeout:.0f} s; "
                f"last lines of {log_path}:\n{node.log_tail()}"
            ) from None
        except BaseException:
            node.stop()
            raise
    raise AssertionError("unreachable")


# -- command line -----------------------------------------------------------------------------------------


def install_log_template(elasticsearch_url: str) -> str:
    """
    Run deploy/setup/setup.sh against the node at *elasticsearch_url* as the compose one-shot
    service does, Kibana left out: the log index template and lifecycle policy installed. Its output.
    """
    setup = subprocess.run(
        ["sh", str(cache.DEPLOY / "setup" / "setup.sh")],
        env={**os.environ, "ELASTICSEARCH_URL": elasticsearch_url, "KIBANA_URL": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == setup.returncode, setup.stdout + setup.stderr
    return setup.stdout


def main(argv: list[str]) -> int:
    usage = "usage: python -m tests.stack.elasticsearch install|run"
    if argv not in (["install"], ["run"]):
        print(usage, file=sys.stderr)
        return 2
    began = time.monotonic()
    folder = install()
    print(f"{NAME} installed in {folder} ({time.monotonic() - began:.1f} s)")
    if argv == ["run"]:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="lc-trace-es-") as tmp:
            began = time.monotonic()
            with start(Path(tmp)) as node:
                print(f"{node.url} ready in {time.monotonic() - began:.1f} s (log: {node.log_path}); Ctrl-C stops it")
                with contextlib.suppress(KeyboardInterrupt):
                    node.process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
