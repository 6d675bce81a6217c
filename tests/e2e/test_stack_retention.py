"""
Retention: deploy/setup/setup.sh against the suite's real Elasticsearch node.

What runs here: the lifecycle component template, the index template composed of it, the first log index
behind the write alias Filebeat writes to, a rollover with the policy's own conditions (the new index gets
the template), a second run changing nothing, and clear refusals of bad settings.

What cannot run here: the node is Elasticsearch 7.10.2 OSS (Apache-2, the only one that runs without
Docker), and index lifecycle management is an X-Pack feature it lacks (``GET _ilm/status`` has no
handler; the ILM plugin is not on Maven Central). So no node here stores the policies or attaches them to
new indices: setup.sh says so and carries on, and the test checks that it did. What can be proved of the
policy is: Elasticsearch's own X-Pack code (7.10.2's core jar, tests/stack/ilm.py) parses and validates
the body setup.sh sends, as ``PUT _ilm/policy`` would, and refuses a broken one; and the node's rollover
API accepts the policy's rollover conditions. With ILM (the compose stack's 9.x default distribution) the
same script installs both policies and the component template names the policy.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.stack import ilm
from tests.stack.cache import DEPLOY
from tests.stack.elasticsearch import ElasticsearchNode

SETUP = DEPLOY / "setup" / "setup.sh"
POLICY = DEPLOY / "elasticsearch" / "lifecycle-policy.json"


def setup(elasticsearch: ElasticsearchNode, **env: str) -> subprocess.CompletedProcess[str]:
    variables = {"ELASTICSEARCH_URL": elasticsearch.url, "KIBANA_URL": "", **env}
    return subprocess.run(
        ["sh", str(SETUP)], env={**os.environ, **variables}, capture_output=True, text=True, timeout=60, check=False
    )


def policy(days: str, size: str) -> dict[str, Any]:
    """The policy setup.sh installs, with its two settings filled in as its ``sed`` does."""
    text = POLICY.read_text().replace("${LC_TRACE_RETENTION_DAYS}", days).replace("${LC_TRACE_ROLLOVER_SIZE}", size)
    return dict(json.loads(text))


def test_policy_deletes_after_the_retention_days_and_rolls_over_by_size():
    placeholders = set(re.findall(r"\$\{(\w+)\}", POLICY.read_text()))
    assert {"LC_TRACE_RETENTION_DAYS", "LC_TRACE_ROLLOVER_SIZE"} == placeholders
    script = SETUP.read_text()
    for name in placeholders:
        assert f"s/\\${{{name}}}/" in script, f"setup.sh does not fill in {name}"
    phases = policy("7", "1gb")["policy"]["phases"]
    assert {"max_size": "1gb", "max_age": "1d"} == phases["hot"]["actions"]["rollover"]
    assert ("7d", {"delete": {}}) == (phases["delete"]["min_age"], phases["delete"]["actions"])


@pytest.mark.parametrize(("days", "size"), [("7", "1gb"), ("30", "500mb")])
def test_elasticsearch_parses_and_validates_the_policy_setup_installs(days, size):
    for name in ("lc-trace-logs", "lc-trace-traces"):
        understood = ilm.check(name, policy(days, size))
        assert {
            "hot": {"min_age": "0ms", "actions": {"rollover": {"max_size": size, "max_age": "1d"}}},
            "delete": {"min_age": f"{days}d", "actions": {"delete": {"delete_searchable_snapshot": True}}},
        } == understood["phases"]


@pytest.mark.parametrize(
    ("phase", "field", "value", "why"),
    [
        ("delete", "actions", {"delet": {}}, "unknown field [delet]"),
        ("hot", "actions", {"rollover": {"max_size": "1gb", "max_agee": "1d"}}, "unknown field [max_agee]"),
        ("hot", "actions", {"rollover": {}}, "At least one rollover condition must be set"),
        ("delete", "min_age", "7days", "failed to parse [7days]"),
    ],
)
def test_elasticsearch_refuses_a_broken_policy(phase, field, value, why):
    """The check above can fail: Elasticsearch's message for a misspelt action or condition, or a bad age."""
    body = policy("7", "1gb")
    body["policy"]["phases"][phase][field] = value
    with pytest.raises(ilm.PolicyRefused, match=re.escape(why)):
        ilm.check("lc-trace-logs", body)


def test_setup_bootstraps_the_log_alias_and_says_what_ilm_it_lacks(elasticsearch):
    done = setup(elasticsearch, LC_TRACE_RETENTION_DAYS="3", LC_TRACE_ROLLOVER_SIZE="1b")
    assert 0 == done.returncode, done.stdout + done.stderr
    assert "no index lifecycle management on" in done.stdout
    status, _ = elasticsearch.request("GET", "/_ilm/status")
    assert status >= 400, "this node has ILM after all: the test should then check the policy is attached"

    status, body = elasticsearch.request("GET", "/_component_template/lc-trace-logs-lifecycle")
    assert 200 == status
    [component] = body["component_templates"]
    assert "index" not in component["component_template"]["template"].get("settings", {}), "no ILM: no policy named"
    status, body = elasticsearch.request("GET", "/_index_template/lc-trace-logs")
    assert ["lc-trace-logs-lifecycle"] == body["index_templates"][0]["index_template"]["composed_of"]

    status, aliases = elasticsearch.request("GET", "/_alias/lc-trace-logs")
    assert 200 == status
    write = [index for index, info in aliases.items() if info["aliases"]["lc-trace-logs"].get("is_write_index")]
    assert 1 == len(write) and write[0].startswith("lc-trace-logs-")

    # Filebeat's writes go through the alias into the current index, under the template's mappings.
    line = {"@timestamp": "2026-11-30T12:00:00.000Z", "message": "llm_end", "trace": {"id": "ab" * 16}}
    status, body = elasticsearch.request("POST", "/_bulk?refresh=true", [{"create": {"_index": "lc-trace-logs"}}, line])
    assert 200 == status and not body["errors"], body
    assert write[0] == body["items"][0]["create"]["_index"]

    # A rollover with the policy's own conditions: at 1gb / 1d nothing happens yet; at 1b it rolls.
    status, dry = elasticsearch.request(
        "POST",
        "/lc-trace-logs/_rollover?dry_run=true",
        {"conditions": policy("3", "1gb")["policy"]["phases"]["hot"]["actions"]["rollover"]},
    )
    assert (200, False) == (status, dry["rolled_over"]), dry
    assert {"[max_size: 1gb]", "[max_age: 1d]"} == set(dry["conditions"])
    status, rolled = elasticsearch.request(
        "POST",
        "/lc-trace-logs/_rollover",
        {"conditions": policy("3", "1b")["policy"]["phases"]["hot"]["actions"]["rollover"]},
    )
    assert (200, True) == (status, rolled["rolled_over"]), rolled
    new_index = rolled["new_index"]
    assert re.fullmatch(r"lc-trace-logs-\d{6}", new_index)
    status, mapping = elasticsearch.request("GET", f"/{new_index}/_mapping")
    assert "false" == str(mapping[new_index]["mappings"]["dynamic"]).lower()
    assert "trace" in mapping[new_index]["mappings"]["properties"]

    # Run again: what exists is kept, nothing fails.
    again = setup(elasticsearch)
    assert 0 == again.returncode, again.stdout + again.stderr
    assert "write alias lc-trace-logs exists" in again.stdout
    status, aliases = elasticsearch.request("GET", "/_alias/lc-trace-logs")
    assert [new_index] == [i for i, info in aliases.items() if info["aliases"]["lc-trace-logs"].get("is_write_index")]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LC_TRACE_RETENTION_DAYS", "0", "LC_TRACE_RETENTION_DAYS must be a whole number of days, 1 or more; got '0'"),
        (
            "LC_TRACE_RETENTION_DAYS",
            "7d",
            "LC_TRACE_RETENTION_DAYS must be a whole number of days, 1 or more; got '7d'",
        ),
        ("LC_TRACE_ROLLOVER_SIZE", "1 GB", "LC_TRACE_ROLLOVER_SIZE must be a size such as 500mb or 1gb; got '1 GB'"),
    ],
)
def test_setup_refuses_bad_retention_settings(elasticsearch, variable, value, message):
    done = setup(elasticsearch, **{variable: value})
    assert (2, message) == (done.returncode, done.stderr.strip())
