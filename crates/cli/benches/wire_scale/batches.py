#!/usr/bin/env python3
"""Sums the supervisor's per-batch log lines of a restart (`connected_batch.rs`, kept by
`BZAPPER_BENCH_LOGS=DIR RUST_LOG=warn,bzapper_server::runtime::supervisor::connected_batch=debug`):
how long the event loop spent on `Connected` batches, and in which phase.

    python3 crates/cli/benches/wire_scale/batches.py DIR/gateway.log

The log is the restarted gateway's (the restart truncates it).
"""
import datetime
import re
import sys

rows = []
for line in open(sys.argv[1], errors="replace"):
    if "batch of connected numbers" not in line:
        continue
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # the log's colours
    fields = dict(re.findall(r"(\w+)=([\d.]+)", line))
    fields["at"] = datetime.datetime.fromisoformat(line[:26])
    rows.append(fields)
if not rows:
    sys.exit("no batch lines: was the supervisor's log at debug?")
numbers = sum(int(r["numbers"]) for r in rows)
took = sum(float(r["took"]) for r in rows) / 1e3
handed = sum(float(r["handed_over"]) for r in rows) / 1e3
stored = sum(float(r["stored"]) for r in rows) / 1e3
span = (rows[-1]["at"] - rows[0]["at"]).total_seconds()
print(f"{len(rows)} batches, {numbers} numbers, {numbers / len(rows):.1f} a batch")
print(f"event loop in batches {took:.2f} s of {span:.2f} s from the first to the last")
for what, secs in [
    ("read + hand over", handed),
    ("states commit", stored - handed),
    ("events durable", took - stored),
]:
    print(f"  {what:<17} {secs:6.2f} s  ({secs / numbers * 1e3:.2f} ms a number)")
