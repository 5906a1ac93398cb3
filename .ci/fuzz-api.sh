#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis (from PyPI) against the served /openapi.json, once with
# the admin token and once with a tenant key: no 5xx, and every response matches its schema.
# The three routes API.md fixes as 501 `not_implemented` are left out (an integration test
# checks them), and so is the SSE stream `/v1/events`, which by design never ends, and so are the
# webhook routes: a fuzzed webhook URL would make the gateway POST events to arbitrary addresses,
# and this machine may send traffic to loopback only (integration tests cover all of them).
# A 5xx anywhere else fails the run. One worker: with two, hypothesis parsed lambda sources in
# two threads at once and CPython 3.11 failed in `ast.parse` ("AST constructor recursion depth
# mismatch", python/cpython#106905), a crash of the tool, not a finding.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${XDG_CACHE_HOME:-$HOME/.cache}/bzapper-ci/venv-schemathesis-4.32.5"
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet schemathesis==4.32.5
fi

cargo build --quiet --bin bzapper
data="$(mktemp -d)"
port=18089
admin="ci-admin-token-$(date +%s)-fuzz"
# Loopback allowed for outbound URLs, as the test suites do: webhook URLs on loopback are
# then accepted rather than refused with 422.
BZAPPER_ADMIN_TOKEN="$admin" BZAPPER_OUTBOUND_ALLOW="127.0.0.0/8,::1,localhost" \
  RUST_LOG=warn target/debug/bzapper serve --sim \
  --listen "127.0.0.1:$port" --data-dir "$data" >"$data/gateway.log" 2>&1 &
gw=$!
trap 'kill $gw 2>/dev/null || true; wait $gw 2>/dev/null || true; rm -rf "$data"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
key=$(curl -fsS -X POST "$base/v1/tenants" -H "Authorization: Bearer $admin" \
  -H 'content-type: application/json' -d '{"name":"fuzz"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')

status=0
for token in "$admin" "$key"; do
  "$venv/bin/st" run "$base/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples 40 --seed 7 --workers 1 --no-color \
    --warnings off \
    --exclude-path-regex '^/v1/(calls|labels|messages/forward|events|webhooks.*)$' || status=1
done
if grep -E '"level":"ERROR"|ERROR' "$data/gateway.log" | head -5; then
  echo "the gateway logged errors during fuzzing"; status=1
fi
exit $status
