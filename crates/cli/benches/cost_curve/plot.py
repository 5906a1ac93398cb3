"""Plots the cost curve the `cost_curve` bench wrote (a CSV, one row per number of numbers)
into one PNG: memory per number, idle CPU, restart time and accepted sends/s against the
number of connected numbers, each with its goal from issue 21.

    python3 crates/cli/benches/cost_curve/plot.py cost_curve.csv docs/cost_curve.png

Needs matplotlib (`python3 -m pip install matplotlib`); the bench runs this itself when
`BZAPPER_BENCH_PLOT` names the PNG and prints the CSV either way.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")  # no display on a build machine
import matplotlib.pyplot as plt  # noqa: E402


def main(csv_path: str, png_path: str) -> None:
    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f)]
    if not rows:
        sys.exit(f"{csv_path}: no rows")
    rows.sort(key=lambda r: int(r["numbers"]))
    n = [int(r["numbers"]) for r in rows]

    def col(name):
        return [float(r[name]) for r in rows]

    panels = [
        (
            "Memory per connected number (KiB)",
            [
                ("RSS, just linked", col("per_number_linked_kib")),
                ("RSS, after a restart", col("per_number_resumed_kib")),
                ("anonymous, just linked", col("anon_per_number_linked_kib")),
                ("anonymous, after a restart", col("anon_per_number_resumed_kib")),
            ],
            100.0,
        ),
        (
            "Gateway CPU at idle (% of one core)",
            [("just linked", col("idle_cpu_pct")), ("after a restart", col("idle_cpu_resumed_pct"))],
            10.0,
        ),
        (
            "Restart → all connected (s)",
            [("all connected", col("restart_s")), ("listening", col("listening_s"))],
            20.0,
        ),
        ("Accepted sends/s (64 connections)", [("accepted/s", col("accepted_per_s"))], 10000.0),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (title, series, goal) in zip(axes.flat, panels):
        for label, ys in series:
            ax.plot(n, ys, marker="o", label=label)
            for x, y in zip(n, ys):
                ax.annotate(f"{y:,.1f}" if y < 100 else f"{y:,.0f}", (x, y), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=8)
        ax.axhline(goal, color="grey", linestyle="--", linewidth=1, label=f"goal {goal:,.0f}")
        ax.set_xscale("log")
        ax.set_xticks(n)
        ax.set_xticklabels([f"{x:,}" for x in n])
        ax.set_xlabel("connected numbers (real driver, wire-level fake)")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("bZapper cost curve, one node on SQLite, 2 cores", fontsize=12)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py COST_CURVE.csv OUT.png")
    main(sys.argv[1], sys.argv[2])
