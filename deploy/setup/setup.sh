#!/bin/sh
# One-shot set-up of the stack's Elasticsearch and Kibana. Safe to run again: everything overwrites or
# is skipped when present.
#
# Elasticsearch (ELASTICSEARCH_URL; empty: skipped):
#   - lifecycle policies lc-trace-logs and lc-trace-traces (deploy/elasticsearch/lifecycle-policy.json):
#     roll over at LC_TRACE_ROLLOVER_SIZE (default 1gb) or after a day, delete LC_TRACE_RETENTION_DAYS
#     (default 7) days after rollover. Only where ILM exists (the default distribution, basic licence);
#     on a node without it (the OSS 7.10 node of the tests) nothing is deleted, and this says so.
#   - component template lc-trace-logs-lifecycle (the policy, attached to every new log index) and the
#     index template lc-trace-logs, before any document arrives, so no field is ever guessed;
#   - the first log index lc-trace-logs-000001 behind the write alias lc-trace-logs, which Filebeat writes to.
#   The trace indices are made by Jaeger's es-rollover (the jaeger-es-init service) with the traces policy.
# Kibana (KIBANA_URL; empty: skipped): data view, saved search, trace.id -> Jaeger link.
set -eu
here=$(dirname "$0")
ES=${ELASTICSEARCH_URL-http://elasticsearch:9200}
KIBANA=${KIBANA_URL-http://kibana:5601}
days=${LC_TRACE_RETENTION_DAYS:-7}
size=${LC_TRACE_ROLLOVER_SIZE:-1gb}

case $days in
  '' | *[!0-9]* | 0*) echo "LC_TRACE_RETENTION_DAYS must be a whole number of days, 1 or more; got '$days'" >&2; exit 2 ;;
esac
if ! echo "$size" | grep -Eq '^[1-9][0-9]*(b|kb|mb|gb|tb)$'; then
  echo "LC_TRACE_ROLLOVER_SIZE must be a size such as 500mb or 1gb; got '$size'" >&2
  exit 2
fi

put() {  # put PATH BODY_FILE: PUT a JSON body, print the answer, fail on an HTTP error
  curl -fsS -X PUT "$ES$1" -H 'Content-Type: application/json' --data-binary "@$2"
  echo
}

if [ -n "$ES" ]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  if curl -fs -o /dev/null "$ES/_ilm/status"; then
    sed -e "s/\${LC_TRACE_RETENTION_DAYS}/$days/" -e "s/\${LC_TRACE_ROLLOVER_SIZE}/$size/" \
      "$here/../elasticsearch/lifecycle-policy.json" > "$scratch/policy.json"
    for policy in lc-trace-logs lc-trace-traces; do
      echo "lifecycle policy $policy (rollover at $size or 1d, delete after $days days) -> $ES"
      put "/_ilm/policy/$policy" "$scratch/policy.json"
    done
    printf '%s' '{"template": {"settings": {"index.lifecycle.name": "lc-trace-logs", "index.lifecycle.rollover_alias": "lc-trace-logs"}}}' \
      > "$scratch/lifecycle.json"
  else
    echo "no index lifecycle management on $ES (an OSS build?): indices are kept until deleted;" \
      "roll over by hand with POST lc-trace-logs/_rollover"
    printf '%s' '{"template": {}}' > "$scratch/lifecycle.json"
  fi
  echo "component template lc-trace-logs-lifecycle -> $ES"
  put "/_component_template/lc-trace-logs-lifecycle" "$scratch/lifecycle.json"
  echo "index template lc-trace-logs -> $ES"
  put "/_index_template/lc-trace-logs" "$here/../elasticsearch/index-template.json"
  if curl -fs -o /dev/null "$ES/_alias/lc-trace-logs"; then
    echo "write alias lc-trace-logs exists"
  else
    echo "first log index lc-trace-logs-000001, write alias lc-trace-logs -> $ES"
    printf '%s' '{"aliases": {"lc-trace-logs": {"is_write_index": true}}}' > "$scratch/bootstrap.json"
    put "/lc-trace-logs-000001" "$scratch/bootstrap.json"
  fi
fi

if [ -n "$KIBANA" ]; then
  echo "saved objects -> $KIBANA"
  curl -fsS -X POST "$KIBANA/api/saved_objects/_import?overwrite=true" \
    -H 'kbn-xsrf: lc-trace-setup' \
    --form "file=@$here/../kibana/saved-objects.ndjson"
  echo
fi
echo "lc_trace set-up done"
