"""`autograder report`: one page to teach from, as HTML (`report.html`) and Markdown (`report.md`).

What it holds, read from the grading folder (journal and meta.json) and the assignment's
questions (autograder.questions):
- the batch's settings (isolation, workers, limits, profile);
- the scores: a histogram with whole numbers of students (`scores.png`), mean and median;
- per question (number, title, points): pass rate and mean points, as a table and a chart
  (`questions.png`);
- per question, the most common failure messages, grouped once numbers and quoted names are
  abstracted away ("a SmallAlexNet ... classifies 10.0% ..." and "... 12.5% ..." are one
  mistake), each with how many students it hit;
- time per notebook (median, slowest), the flagged submissions with their reasons, the
  errors that stopped notebooks, and the last regrade's audit (autograder.regrade).
Everything a student's code influenced (messages, flags) is escaped for where it goes.
"""
from __future__ import annotations

import html
import json
import re
import statistics
from collections import Counter
from pathlib import Path

from autograder.results import AWAITING, GRADED_BY_HAND, NOT_ANSWERED, load, manual_as_tests, with_human_scores

_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d[\d,]*(\.\d+)?(e[-+]?\d+)?%?")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def mistake(message: str) -> str:
    """A failure message with its particulars abstracted: numbers become #, quoted text '…'."""
    text = _QUOTED.sub("'…'", message.split("\n")[0])
    text = _NUMBER.sub("#", text)
    return text[:160]


def summarise(entries: dict[str, dict], questions: dict) -> dict:
    """The report's numbers, computed once for both renderings."""
    order = {g: q.number for g, q in questions.items()}
    # the written answers among the tests, as graded by hand so far (results.with_human_scores)
    entries = {s: {**e, "tests": manual_as_tests(e)} for s, e in entries.items()}
    gids = sorted({t["grade_id"] for e in entries.values() for t in e["tests"]}, key=lambda g: (order.get(g, 1000), g))
    per_q, written = [], []
    for gid in gids:
        results = [t for e in entries.values() for t in e["tests"] if t["grade_id"] == gid]
        if results and results[0].get("manual"):
            q = questions.get(gid)
            written.append({"label": q.label if q else gid, "grade_id": gid,
                            **{k: sum(t["status"] == k for t in results) for k in (GRADED_BY_HAND, AWAITING, NOT_ANSWERED)}})
            # a written answer "passes" when a human gave it every point
            results = [{**t, "status": "passed" if t["status"] == GRADED_BY_HAND and t["score"] >= t["points"] else t["status"]}
                       for t in results]
        failures = Counter(mistake(t["message"]) for t in results if t["status"] != "passed" and t["message"])
        q = questions.get(gid)
        per_q.append({"grade_id": gid, "label": q.label if q else gid, "points": results[0]["points"] if results else 0,
                      "passed": sum(t["status"] == "passed" for t in results), "n": len(results),
                      "mean": statistics.fmean(t["score"] for t in results) if results else 0.0,
                      "common": failures.most_common(3)})
    totals = [sum(t["score"] for t in e["tests"]) for e in entries.values()]
    seconds = sorted(((e.get("seconds", 0.0), s) for s, e in entries.items()), reverse=True)
    return {"questions": per_q, "totals": totals, "written": written,
            "top": max((sum(t["points"] for t in e["tests"]) for e in entries.values()), default=0),
            "seconds": seconds,
            "flagged": {s: e["flags"] for s, e in entries.items() if e.get("flags")},
            "errors": [(s, d["message"]) for s, e in entries.items() for d in e["diagnostics"] if d["severity"] == "error"]}


def histogram(totals: list[float], top: float, title: str):
    """The score histogram: one bar per whole score, whole numbers of students on its axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(totals, bins=max(1, int(top) + 1), range=(-0.5, top + 0.5))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))   # a count of students is a whole number
    ax.set(xlabel="score", ylabel="students", title=title)
    fig.tight_layout()
    return fig


def charts(summary: dict, out: Path, assignment: str) -> None:
    """scores.png (whole-number counts) and questions.png (pass rate per question)."""
    import matplotlib.pyplot as plt

    fig = histogram(summary["totals"], summary["top"], assignment)
    fig.savefig(out / "scores.png", dpi=100)
    plt.close(fig)
    qs = summary["questions"]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(qs) + 1))
    ax.barh([f"Q{i + 1}" for i in range(len(qs))][::-1], [q["passed"] / max(1, q["n"]) for q in qs][::-1])
    ax.set(xlim=(0, 1), xlabel="fraction of students who passed", title="per question")
    fig.tight_layout()
    fig.savefig(out / "questions.png", dpi=100)
    plt.close(fig)


def markdown(meta: dict, summary: dict) -> str:
    from autograder.text import markdown_inline as md

    totals = summary["totals"]
    lines = [f"# Grading report: {meta['assignment']}", "", f"Isolation: {meta['isolation']}",
             f"Students: {len(totals)}", "Settings: " + (", ".join(f"{k} {v}" for k, v in meta.get("settings", {}).items())
                                                        or "not recorded"), ""]
    if totals:
        lines += [f"Score: mean {statistics.fmean(totals):.1f}, median {statistics.median(totals):g} "
                  f"of {summary['top']:g}", ""]
    lines += ["![scores](scores.png)", "", "## Questions", "", "![per question](questions.png)", "",
              "| question | points | pass rate | mean points |", "|---|---|---|---|"]
    for q in summary["questions"]:
        lines.append(f"| {md(q['label'])} (`{q['grade_id']}`) | {q['points']:g} | {q['passed']}/{q['n']} "
                     f"({100 * q['passed'] / max(1, q['n']):.0f}%) | {q['mean']:.2f} |")
    if summary.get("written"):
        lines += ["", "## Written answers (graded by hand in the formgrader)", ""]
        lines += [f"- {md(w['label'])}: {w[GRADED_BY_HAND]} graded, {w[AWAITING]} awaiting grading, "
                  f"{w[NOT_ANSWERED]} not answered" for w in summary["written"]]
    lines += ["", "## Most common failures", ""]
    for q in summary["questions"]:
        if q["common"]:
            lines.append(f"- {md(q['label'])}:")
            lines += [f"  - {n} student{'s' if n > 1 else ''}: {md(text)}" for text, n in q["common"]]
    if not any(q["common"] for q in summary["questions"]):
        lines.append("- none")
    secs = summary["seconds"]
    lines += ["", "## Time per notebook", ""]
    if secs:
        lines.append(f"median {statistics.median(s for s, _ in secs):.1f} s; slowest: "
                     + ", ".join(f"{md(st)} {s:.1f} s" for s, st in secs[:3]))
    # flags and messages quote the kernel's text: escaped, so they cannot add markup to the report
    lines += ["", "## Needs a human (suspected tampering)", ""]
    lines += [f"- {md(s)}: {md('; '.join(f))}" for s, f in summary["flagged"].items()] or ["- none"]
    lines += ["", "## Errors", ""]
    lines += [f"- {md(s)}: {md(m)}" for s, m in summary["errors"]] or ["- none"]
    if summary.get("audit") is not None:
        lines += ["", f"## Last regrade ({summary['audit']['file']})", ""]
        lines += [f"- {md(r['student'])}, {md(r['question'])}: {r['old'] or '-'} -> {r['new']} ({r['reason']})"
                  for r in summary["audit"]["rows"]] or ["- no score changed"]
    return "\n".join(lines) + "\n"


def page(meta: dict, summary: dict) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(q['label'])} <code>{e(q['grade_id'])}</code></td><td>{q['points']:g}</td>"
                   f"<td>{q['passed']}/{q['n']} ({100 * q['passed'] / max(1, q['n']):.0f}%)</td><td>{q['mean']:.2f}</td></tr>"
                   for q in summary["questions"])
    common = "".join(f"<li>{e(q['label'])}<ul>" + "".join(f"<li>{n} \u00d7 <code>{e(t)}</code></li>" for t, n in q["common"])
                     + "</ul></li>" for q in summary["questions"] if q["common"]) or "<li>none</li>"
    secs = summary["seconds"]
    timing = (f"median {statistics.median(s for s, _ in secs):.1f} s; slowest: "
              + ", ".join(f"{e(st)} {s:.1f} s" for s, st in secs[:3])) if secs else "no notebooks"
    flagged = "".join(f"<li>{e(s)}: {e('; '.join(f))}</li>" for s, f in summary["flagged"].items()) or "<li>none</li>"
    written = ("<h2>Written answers (graded by hand in the formgrader)</h2><ul>" + "".join(
        f"<li>{e(w['label'])}: {w[GRADED_BY_HAND]} graded, {w[AWAITING]} awaiting grading, {w[NOT_ANSWERED]} not answered</li>"
        for w in summary["written"]) + "</ul>") if summary.get("written") else ""
    errors = "".join(f"<li>{e(s)}: {e(m)}</li>" for s, m in summary["errors"]) or "<li>none</li>"
    settings = ", ".join(f"{e(str(k))} {e(str(v))}" for k, v in meta.get("settings", {}).items()) or "not recorded"
    audit = ""
    if summary.get("audit") is not None:
        items = "".join(f"<li>{e(r['student'])}, {e(r['question'])}: {e(r['old'] or '-')} \u2192 {e(r['new'])} "
                        f"({e(r['reason'])})</li>" for r in summary["audit"]["rows"]) or "<li>no score changed</li>"
        audit = f"<h2>Last regrade ({e(summary['audit']['file'])})</h2><ul>{items}</ul>"
    totals = summary["totals"]
    score = (f"mean {statistics.fmean(totals):.1f}, median {statistics.median(totals):g} of {summary['top']:g}"
             if totals else "no students")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Report: {e(meta['assignment'])}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 60rem; line-height: 1.5; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .2rem .6rem; text-align: left; }}
img {{ max-width: 100%; }} code {{ overflow-wrap: anywhere; }}</style></head><body>
<h1>Grading report: {e(meta['assignment'])}</h1>
<p>{len(totals)} students; isolation {e(meta['isolation'])}; settings: {settings}</p>
<h2>Scores</h2><p>{score}</p><img src="scores.png" alt="histogram of scores">
<h2>Questions</h2><table><tr><th>question</th><th>points</th><th>pass rate</th><th>mean points</th></tr>{rows}</table>
<img src="questions.png" alt="pass rate per question">
{written}
<h2>Most common failures</h2><ul>{common}</ul>
<h2>Time per notebook</h2><p>{timing}</p>
<h2>Needs a human (suspected tampering)</h2><ul>{flagged}</ul>
<h2>Errors</h2><ul>{errors}</ul>
{audit}
</body></html>
"""


def run(args) -> int:
    from autograder.questions import load as load_questions

    meta, entries = load(Path(args.output))
    entries = with_human_scores(meta, entries)
    out = Path(args.output)
    summary = summarise(entries, load_questions(meta.get("root", "."), meta["assignment"]))
    latest = out / "audit" / "latest.json"
    summary["audit"] = json.loads(latest.read_text()) if latest.exists() else None
    charts(summary, out, meta["assignment"])
    (out / "report.md").write_text(markdown(meta, summary))
    (out / "report.html").write_text(page(meta, summary))
    print(f"report in {out / 'report.html'} (and report.md), charts in scores.png and questions.png")
    return 0


def register(subparsers) -> None:
    from autograder.grade import add_common
    p = subparsers.add_parser("report", help="one page to teach from: scores, per-question results, common mistakes")
    add_common(p)
    p.set_defaults(func=run)
