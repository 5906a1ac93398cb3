#!/usr/bin/env bash
# Proves that a normal build of `bzapper` (what `cargo build --release` ships) refuses the
# wire-level fake WhatsApp server, whose certificate chain is zero-signed: only test builds turn
# the protocol library's `danger-skip-cert-chain-verify` on (a dev-dependency feature).
#
# 1. Statically: the normal feature graph of `bzapper` has no `danger-skip-cert-chain-verify`.
# 2. Live: a normal (debug, no dev-dependencies — the same features as release) `bzapper serve`
#    pointed at `bzapper simnet --wire` never shows a QR code: the Noise handshake fails on the
#    certificate chain's signatures, and the gateway says so in its log.
set -euo pipefail
cd "$(dirname "$0")/.."

if cargo tree -p bzapper -e features,normal | grep -q 'danger-skip-cert-chain-verify'; then
  echo "the normal build of bzapper enables danger-skip-cert-chain-verify"; exit 1
fi
echo "feature graph: no danger-skip-cert-chain-verify in the normal build"

cargo build --quiet --bin bzapper
bin=target/debug/bzapper
data="$(mktemp -d)"
wire_port=18091
port=18092
admin="ci-admin-token-$(date +%s)-wire"
RUST_LOG=warn "$bin" simnet --wire --listen "127.0.0.1:$wire_port" >"$data/wire.log" 2>&1 &
wire=$!
BZAPPER_ADMIN_TOKEN="$admin" RUST_LOG=info "$bin" serve --listen "127.0.0.1:$port" \
  --data-dir "$data/gw" --sim-wire-url "http://127.0.0.1:$wire_port" >"$data/gateway.log" 2>&1 &
gw=$!
trap 'kill $gw $wire 2>/dev/null || true; wait $gw $wire 2>/dev/null || true; rm -rf "$data"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
key=$(curl -fsS -X POST "$base/v1/tenants" -H "Authorization: Bearer $admin" \
  -H 'content-type: application/json' -d '{"name":"wire"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
id=$(curl -fsS -X POST "$base/v1/instances" -H "Authorization: Bearer $key" \
  -H 'content-type: application/json' -d '{"name":"refused"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

# A test build shows the fake's QR code within a second or two (crates/cli/tests/wire.rs). Here
# the handshake must fail on the certificate and no QR code may ever come.
for _ in $(seq 1 150); do
  grep -q 'certificate verification failed' "$data/gateway.log" && break
  sleep 0.1
done
if ! grep -q 'certificate verification failed' "$data/gateway.log"; then
  echo "no certificate failure in the gateway log:"; tail -20 "$data/gateway.log"; exit 1
fi
qr=$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/instances/$id/qr" -H "Authorization: Bearer $key")
if [ "$qr" = "200" ]; then
  echo "the normal build showed the fake's QR code: it accepted the certificate chain"; exit 1
fi
echo "live: the normal build refused the fake (no QR code, GET /qr answered $qr):"
grep -o 'Server certificate verification failed[^.]*' "$data/gateway.log" | head -1
