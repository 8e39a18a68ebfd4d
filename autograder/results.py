"""Reading a grading folder back: the journal's latest entry per student, and its metadata."""
from __future__ import annotations

import json
from pathlib import Path


def load(output: Path) -> tuple[dict, dict[str, dict]]:
    output = Path(output)
    meta_path = output / "meta.json"
    if not meta_path.exists():
        raise SystemExit(f"{output} is not a grading folder (no meta.json); run `autograder grade` first")
    entries: dict[str, dict] = {}
    for line in (output / "journal.jsonl").read_text().splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        entries[e["student"]] = e
    return json.loads(meta_path.read_text()), dict(sorted(entries.items()))
