"""
The OpenTelemetry Collector and Jaeger v2, built from Go modules through the Go module proxy.

No collector or Jaeger binary is packaged for the registries these machines reach, but both are
Go programs: the collector is built by the OpenTelemetry Collector Builder from
``deploy/otel-collector/builder-config.yaml`` (the components our config uses, at the image's
version), Jaeger from its module source. Each build is cached per version; a build takes minutes,
a cached one nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.stack.cache import DEPLOY, locked, versions

COLLECTOR_MANIFEST = DEPLOY / "otel-collector" / "builder-config.yaml"


def _go(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    if shutil.which("go") is None:
        raise RuntimeError("the Go toolchain is needed to build the collector and Jaeger (https://go.dev/dl/)")
    done = subprocess.run(
        ["go", *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"`go {' '.join(args)}` failed in {cwd}:\n{done.stderr[-4000:]}")
    return done.stdout


def collector() -> Path:
    """The collector binary of ``builder-config.yaml`` (built once per version)."""
    version = versions()["OTELCOL_VERSION"]
    with locked(f"otelcol-{version}") as folder:
        binary = folder / "otelcol-lc-trace"
        if binary.exists():
            return binary
        manifest = yaml.safe_load(COLLECTOR_MANIFEST.read_text())
        build = folder / "build"
        manifest["dist"]["output_path"] = str(build)
        (folder / "builder-config.yaml").write_text(yaml.safe_dump(manifest))
        _go(
            "run",
            f"go.opentelemetry.io/collector/cmd/builder@v{version}",
            "--config",
            "builder-config.yaml",
            cwd=folder,
        )
        (build / "otelcol-lc-trace").rename(binary)
        shutil.rmtree(build, ignore_errors=True)
        return binary


def jaeger() -> Path:
    """
    Jaeger v2, built from the module version that carries the release (``.env``).

    The module's go.mod has a replace directive, so ``go install mod@version`` refuses it; the
    source is downloaded through the proxy and built as the main module instead.
    """
    env = versions()
    version, module_version = env["JAEGER_VERSION"], env["JAEGER_GO_MODULE_VERSION"]
    with locked(f"jaeger-{version}") as folder:
        binary = folder / "jaeger"
        if binary.exists():
            return binary
        with tempfile.TemporaryDirectory() as scratch:
            info = json.loads(
                _go("mod", "download", "-json", f"github.com/jaegertracing/jaeger@v{module_version}", cwd=Path(scratch))
            )
            source = Path(scratch) / "jaeger"
            shutil.copytree(info["Dir"], source)
            for path in source.rglob("*"):
                path.chmod(path.stat().st_mode | 0o200)
            ldflags = f"-X github.com/jaegertracing/jaeger/internal/version.latestVersion=v{version}"
            _go(
                "build", "-trimpath", "-ldflags", ldflags, "-o", str(folder / "jaeger.part"), "./cmd/jaeger", cwd=source
            )
        (folder / "jaeger.part").rename(binary)
        return binary
