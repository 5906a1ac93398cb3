#!/usr/bin/env bash
# Starts an S3-compatible server for the tests of the S3 media store, and prints the shell
# lines that point the tests at it:
#   eval "$(bash .ci/s3.sh)"    # sets BZAPPER_TEST_S3_URL and BZAPPER_CI_S3_PID
# The server is s3s-fs (crates.io: a real S3 API server over a directory, by the s3s project),
# installed once with `cargo install` into the CI cache (about 4 minutes on 2 cores the first
# time; a later run finds it and skips the install). Each run gets a fresh data directory, a
# free loopback port, its own secret and a bucket `bzapper-test`. Stop it with
# `kill $BZAPPER_CI_S3_PID`.
set -euo pipefail

version="0.14.1" # the newest s3s-fs that builds with Rust 1.95
root="${XDG_CACHE_HOME:-$HOME/.cache}/bzapper-ci/s3s-fs-$version"
bin="$root/bin/s3s-fs"
if [ ! -x "$bin" ]; then
  echo "installing s3s-fs $version into $root" >&2
  started=$(date +%s)
  cargo install --quiet "s3s-fs@$version" --features binary --locked --root "$root" >&2
  echo "s3s-fs installed in $(( $(date +%s) - started )) s" >&2
fi

data="$(mktemp -d "${TMPDIR:-/tmp}/bzapper-s3.XXXXXX")"
mkdir "$data/bzapper-test" # a directory of the root is a bucket
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
access="bzapper-ci"
secret="ci-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
# Detached from this script's output, so that `$(...)` around it returns.
nohup "$bin" --host 127.0.0.1 --port "$port" --access-key "$access" --secret-key "$secret" \
  "$data" >"$data.log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 100); do
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)"
  [ "$code" != "000" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "s3s-fs did not start:" >&2
    cat "$data.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "s3s-fs $version listening on 127.0.0.1:$port (data in $data)" >&2
echo "export BZAPPER_TEST_S3_URL=http://$access:$secret@127.0.0.1:$port/bzapper-test"
echo "export BZAPPER_CI_S3_PID=$pid"
