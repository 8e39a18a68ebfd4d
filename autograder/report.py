"""`autograder report`: score histogram (PNG), per-test pass rates, flags and errors (Markdown)."""
from __future__ import annotations

from pathlib import Path

from autograder.results import load


def run(args) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autograder.text import markdown_inline as md

    meta, entries = load(Path(args.output))
    out = Path(args.output)
    totals = [sum(t["score"] for t in e["tests"]) for e in entries.values()]
    top = max((sum(t["points"] for t in e["tests"]) for e in entries.values()), default=0)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(totals, bins=max(1, int(top) + 1), range=(-0.5, top + 0.5))
    ax.set_xlabel("score")
    ax.set_ylabel("students")
    ax.set_title(meta["assignment"])
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=100)
    lines = [f"# Grading report: {meta['assignment']}", "", f"Isolation: {meta['isolation']}",
             f"Students: {len(entries)}", "", "![scores](scores.png)", "", "| test | pass rate |", "|---|---|"]
    tests = sorted({t["grade_id"] for e in entries.values() for t in e["tests"]})
    for gid in tests:
        res = [t["status"] == "passed" for e in entries.values() for t in e["tests"] if t["grade_id"] == gid]
        lines.append(f"| {gid} | {sum(res)}/{len(res)} ({100 * sum(res) / max(1, len(res)):.0f}%) |")
    lines += ["", "## Needs a human (suspected tampering)", ""]
    # flags and messages quote the kernel's text: escaped, so they cannot add markup to the report
    lines += [f"- {md(s)}: {md('; '.join(e['flags']))}" for s, e in entries.items() if e["flags"]] or ["- none"]
    lines += ["", "## Errors", ""]
    lines += [f"- {md(s)}: {md(d['message'])}" for s, e in entries.items() for d in e["diagnostics"]
              if d["severity"] == "error"] or ["- none"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"report in {out / 'report.md'}, histogram in {out / 'scores.png'}")
    return 0


def register(subparsers) -> None:
    from autograder.grade import add_common
    p = subparsers.add_parser("report", help="summary with score histogram and per-test pass rates")
    add_common(p)
    p.set_defaults(func=run)
