"""
A tiny OTLP/HTTP (protobuf) receiver on loopback, in the test process: the suite's other OTLP
tests go through the real collector into Jaeger (tests/stack), which answers "is it stored", not
"how many times did it arrive"; these tests count every span that reaches the exporter's
endpoint, duplicates included. It decodes with opentelemetry-proto, answers 200 to traces and
metrics, and keeps each span's ``langchain.run.id`` and ``langchain.metadata.call``.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.stack.cache import free_port


class Receiver:
    """Spans received, by run id; ``url`` is the endpoint for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.calls: dict[str, str] = {}  # run id -> call number
        self.lock = threading.Lock()
        receiver = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                reply = b""
                if self.path == "/v1/traces":
                    receiver._take(body)
                    reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        for _ in range(5):
            try:
                self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handle)
                break
            except OSError:
                continue
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        attributes = {a.key: a.value.string_value for a in span.attributes}
                        run = attributes.get("langchain.run.id", "")
                        self.runs[run] += 1
                        self.calls[run] = attributes.get("langchain.metadata.call", "")

    def spans_by_call(self) -> dict[int, list[str]]:
        """Run ids per call number, each as often as its span arrived."""
        found: dict[int, list[str]] = {}
        with self.lock:
            for run, count in self.runs.items():
                if self.calls.get(run, "").isdigit():
                    found.setdefault(int(self.calls[run]), []).extend([run] * count)
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
