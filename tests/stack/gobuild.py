"""
The OpenTelemetry Collector and Jaeger v2, built from Go modules through the Go module proxy.

No collector or Jaeger binary is packaged for the registries these machines reach, but both are
Go programs: the collector is built by the OpenTelemetry Collector Builder from
``deploy/otel-collector/builder-config.yaml`` (the components our config uses, at the image's
version), Jaeger from its module source. Each build is cached per version; a build takes minutes,
a cached one nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.stack.cache import DEPLOY, building, locked, versions

COLLECTOR_MANIFEST = DEPLOY / "otel-collector" / "builder-config.yaml"
# No DWARF debug info, from compiler and linker: the same programs (stack traces come from the symbol table, which
# stays), ~9% less CPU for a fresh build (VictoriaMetrics: 71 CPU-s instead of 78). The builder's link is already -s -w.
GCFLAGS = "all=-dwarf=false"
# The collector and Jaeger (the two long builds) also without the compiler's optimisations and inlining: the same
# source and configs, ~25% less CPU for a fresh build (Jaeger 346 CPU-s instead of 448, the collector 258 instead of
# ~350), and the suite's Go-program tests as fast within noise (100 s against 92 s, every one passing): they send a
# few thousand spans at most. VictoriaMetrics stays optimised (its build is short).
UNOPTIMISED_GCFLAGS = f"{GCFLAGS} -N -l"
LDFLAGS = "-s -w"


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
    """
    The collector binary of ``builder-config.yaml``, built once per version and per manifest (a component
    added to the manifest builds a new collector; the old one stays cached beside it).
    """
    version = versions()["OTELCOL_VERSION"]
    fingerprint = hashlib.sha256(COLLECTOR_MANIFEST.read_bytes()).hexdigest()[:12]
    with locked(f"otelcol-{version}-{fingerprint}") as folder:
        binary = folder / "otelcol-lc-trace"
        if binary.exists():
            return binary
        manifest = yaml.safe_load(COLLECTOR_MANIFEST.read_text())
        build = folder / "build"
        manifest["dist"]["output_path"] = str(build)
        (folder / "builder-config.yaml").write_text(yaml.safe_dump(manifest))
        with building(
            f"the OpenTelemetry Collector {version} (Collector Builder, Go)",
            "3 min alone on 2 cores, 9-12 beside the other builds and tests",
            folder,
        ):
            _go(
                "run",
                f"go.opentelemetry.io/collector/cmd/builder@v{version}",
                "--config",
                "builder-config.yaml",
                f"--gcflags={UNOPTIMISED_GCFLAGS}",
                cwd=folder,
            )
        (build / "otelcol-lc-trace").rename(binary)
        shutil.rmtree(build, ignore_errors=True)
        return binary


def jaeger() -> Path:
    """Jaeger v2, built from the module version that carries the release (``.env``)."""
    return _jaeger_program("jaeger", "./cmd/jaeger")


def jaeger_es_rollover() -> Path:
    """
    Jaeger's ``es-rollover`` (the ``jaegertracing/jaeger-es-rollover`` image's program) from the same module
    version: ``init`` creates the index templates, first indices and read/write aliases Jaeger uses.

    Built after Jaeger, whose compiled packages it reuses from the Go build cache: a test that asks for it while
    Jaeger builds waits for that build instead of compiling the same packages beside it.
    """
    jaeger()
    return _jaeger_program("es-rollover", "./cmd/es-rollover")


def _jaeger_program(name: str, package: str) -> Path:
    """
    One program of Jaeger's Go module, built once per release into ``<cache>/jaeger-<version>/<name>``.

    The module's go.mod has a replace directive, so ``go install mod@version`` refuses it; the
    source is downloaded through the proxy and built as the main module instead.
    """
    env = versions()
    version, module_version = env["JAEGER_VERSION"], env["JAEGER_GO_MODULE_VERSION"]
    folder_name = f"jaeger-{version}" if name == "jaeger" else f"jaeger-{name}-{module_version}"
    with locked(folder_name) as folder:
        binary = folder / name
        if binary.exists():
            return binary
        about = (
            "3 min alone on 2 cores, 10-12 beside the other builds and tests"
            if name == "jaeger"
            else "2 min on 2 cores, seconds after Jaeger's own build"
        )
        with (
            building(f"Jaeger {version}'s {name} (Go module v{module_version})", about, folder),
            tempfile.TemporaryDirectory() as scratch,
        ):
            info = json.loads(
                _go("mod", "download", "-json", f"github.com/jaegertracing/jaeger@v{module_version}", cwd=Path(scratch))
            )
            source = Path(scratch) / "jaeger"
            shutil.copytree(info["Dir"], source)
            for path in source.rglob("*"):
                path.chmod(path.stat().st_mode | 0o200)
            ldflags = f"{LDFLAGS} -X github.com/jaegertracing/jaeger/internal/version.latestVersion=v{version}"
            part = folder / f"{name}.part"
            _go(
                "build",
                "-trimpath",
                "-gcflags",
                UNOPTIMISED_GCFLAGS,
                "-ldflags",
                ldflags,
                "-o",
                str(part),
                package,
                cwd=source,
            )
        part.rename(binary)
        return binary


def victoriametrics() -> Path:
    """
    VictoriaMetrics single-node (the compose metrics store), built from its Go module at ``.env``'s
    ``VICTORIAMETRICS_VERSION``; vmui is embedded in the module, so the binary serves the UI as the image does.
    """
    version = versions()["VICTORIAMETRICS_VERSION"]
    with locked(f"victoria-metrics-{version}") as folder:
        binary = folder / "victoria-metrics"
        if binary.exists():
            return binary
        with (
            building(
                f"VictoriaMetrics {version} (Go module)", "1 min alone on 2 cores, 2-4 beside the other builds", folder
            ),
            tempfile.TemporaryDirectory() as scratch,
        ):
            module = f"github.com/VictoriaMetrics/VictoriaMetrics@v{version}"
            info = json.loads(_go("mod", "download", "-json", module, cwd=Path(scratch)))
            source = Path(scratch) / "vm"
            shutil.copytree(info["Dir"], source)
            for path in source.rglob("*"):
                path.chmod(path.stat().st_mode | 0o200)
            part = folder / "victoria-metrics.part"
            # Pure Go (VictoriaMetrics' own "pure" build): no C compiler needed, zstd from klauspost/compress.
            _go(
                "build",
                "-trimpath",
                "-gcflags",
                GCFLAGS,
                "-ldflags",
                LDFLAGS,
                "-o",
                str(part),
                "./app/victoria-metrics",
                cwd=source,
                env={"CGO_ENABLED": "0"},
            )
        part.rename(binary)
        return binary
