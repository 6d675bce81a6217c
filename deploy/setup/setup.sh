#!/bin/sh
# One-shot set-up of the log side: the index template into Elasticsearch, then Kibana's saved
# objects (data view, saved search, trace.id → Jaeger link). Safe to run again: both overwrite.
# KIBANA_URL empty: Elasticsearch only (the tests run it so, against a real node).
set -eu
here=$(dirname "$0")
ES=${ELASTICSEARCH_URL:-http://elasticsearch:9200}
KIBANA=${KIBANA_URL-http://kibana:5601}

echo "index template lc-trace-logs -> $ES"
curl -fsS -X PUT "$ES/_index_template/lc-trace-logs" \
  -H 'Content-Type: application/json' \
  --data-binary "@$here/../elasticsearch/index-template.json"
echo

if [ -n "$KIBANA" ]; then
  echo "saved objects -> $KIBANA"
  curl -fsS -X POST "$KIBANA/api/saved_objects/_import?overwrite=true" \
    -H 'kbn-xsrf: lc-trace-setup' \
    --form "file=@$here/../kibana/saved-objects.ndjson"
  echo
fi
echo "lc_trace set-up done"
