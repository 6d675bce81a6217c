"""
Elasticsearch's own reading of an index lifecycle policy, where no node with ILM can run.

The test node is Elasticsearch 7.10.2 OSS, and index lifecycle management is X-Pack: ``PUT _ilm/policy``
has no handler there, and the ILM plugin is not on Maven Central. X-Pack's core jar is, with the classes
that parse and validate a policy body; ``elasticsearch/ilm/IlmPolicyCheck.java`` runs them on a file as the
``PUT _ilm/policy/NAME`` handler does. ``install()`` fetches that one jar with Maven beside the node's jars
and compiles the checker (seconds; the node's install first); ``check()`` returns the policy as
Elasticsearch understood it, or raises :class:`PolicyRefused` with Elasticsearch's message.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.stack import cache, elasticsearch

SOURCES = Path(__file__).with_name("elasticsearch") / "ilm"
NAME = f"elasticsearch-ilm-check-{elasticsearch.VERSION}"


class PolicyRefused(ValueError):
    """Elasticsearch's X-Pack refused the policy; the message is its own."""


def install() -> Path:
    """The checker's folder (``lib/x-pack-core-*.jar``, ``classes/IlmPolicyCheck.class``), built once."""
    node = elasticsearch.install()
    digest = hashlib.sha256(elasticsearch.VERSION.encode())
    for name in ("pom.xml", "IlmPolicyCheck.java"):
        digest.update((SOURCES / name).read_bytes())
    fingerprint = digest.hexdigest()
    with cache.locked(NAME) as folder:
        marker = folder / ".installed"
        if marker.is_file() and marker.read_text().strip() == fingerprint:
            return folder
        for part in ("lib", "classes"):
            shutil.rmtree(folder / part, ignore_errors=True)
        with cache.building("the ILM policy checker (X-Pack core 7.10.2, Maven Central)", "20 s", folder):
            _run(
                [
                    elasticsearch._tool("mvn", "Maven"),
                    "--batch-mode",
                    "--quiet",
                    "--file",
                    str(SOURCES / "pom.xml"),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={folder / 'lib'}",
                ],
                folder,
            )
            classpath = f"{node / 'lib' / '*'}:{folder / 'lib' / '*'}"
            javac = elasticsearch._java_tool("javac")
            _run(
                [
                    javac,
                    "--release",
                    "11",
                    "-d",
                    str(folder / "classes"),
                    "-cp",
                    classpath,
                    str(SOURCES / "IlmPolicyCheck.java"),
                ],
                folder,
            )
        marker.write_text(fingerprint + "\n")
        return folder


def check(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """*body* (a ``PUT _ilm/policy/NAME`` body) as Elasticsearch 7.10.2's X-Pack parses and validates it."""
    folder, node = install(), elasticsearch.install()
    classpath = ":".join([str(node / "lib" / "*"), str(folder / "lib" / "*"), str(folder / "classes")])
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(body, file)
        file.flush()
        done = subprocess.run(
            [elasticsearch._java_tool("java"), "-cp", classpath, "IlmPolicyCheck", name, file.name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if done.returncode == 1:
        raise PolicyRefused(done.stderr.strip())
    if done.returncode != 0:
        raise RuntimeError(f"IlmPolicyCheck failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return dict(json.loads(done.stdout))


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
