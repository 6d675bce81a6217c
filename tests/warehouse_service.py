"""
A second service for tests/e2e/test_e2e_jaeger.py: an HTTP server on 127.0.0.1 whose handler runs a
LangChain chain traced by lc_trace, continuing the caller's trace from its ``traceparent``
header (passed in the run's metadata, as a LangGraph server or a queue consumer would).

    python -m tests.warehouse_service <collector host:port>

Prints its port, answers one POST, flushes its spans to the collector, exits.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from lc_trace import TraceHandler
from lc_trace.testing import FakeChatModel


def main(collector: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "e2e-warehouse"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector, insecure=True, timeout=5)))
    handler = TraceHandler(tracer_provider=provider, log_path=None)
    model = FakeChatModel(responses=["12 roses in stock."])

    class Stock(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802  # http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            metadata = {key: self.headers[key] for key in ("traceparent", "tracestate") if self.headers.get(key)}
            answer = model.invoke("How many roses?", {"callbacks": [handler], "metadata": metadata})
            body = json.dumps({"answer": answer.content}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # quiet
            pass

    server = HTTPServer(("127.0.0.1", 0), Stock)
    print(server.server_address[1], flush=True)
    server.handle_request()
    server.server_close()
    handler.close()
    provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
