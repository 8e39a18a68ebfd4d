"""The instructor guide's table of assignments says what the solution notebooks say: every
assignment is listed, with its points (autograded, plus those graded by hand) and the fast
profile's training targets."""
import pathlib
import re

import nbformat

from autograder import notebook_checks as checks

ROOT = pathlib.Path(__file__).resolve().parents[1]
GUIDE = ROOT / "book" / "guides" / "instructor.md"
ROW = re.compile(r"^\| `(a\d\d-[a-z0-9-]+)` \| [^|]+ \| (\d+(?: \+ \d+ by hand)?) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", re.M)


def _assignments(text: str) -> dict[str, tuple[str, str, str, str]]:
    return {m[1]: (m[2], m[3].strip(), m[4].strip(), m[5].strip()) for m in ROW.finditer(text)}


def _grader_target(nb) -> str:
    """The grader's target on its own task: `_GLYPH_TARGET` (an accuracy), `_MAP50` (a detector's
    mAP@0.5), `_MIOU` (a segmenter's mean IoU over the object classes), `_PPL_RATIO` (a perplexity as a fraction
    of the unigram model's) or `_MODES` and `_QUALITY` (a GAN's modes covered and fraction of high-quality
    samples) in the hidden convergence test."""
    for cell in nb.cells:
        if checks.nbgrader_meta(cell).get("grade_id") == "test_convergence":
            m = re.search(r"^_GLYPH_TARGET = ([0-9.]+)", cell.source, re.M)
            if m:
                return f"{float(m[1]):.2f}"
            m = re.search(r"^_MAP50 = ([0-9.]+)", cell.source, re.M)
            if m:
                return f"mAP@0.5 {float(m[1]):.2f}"
            m = re.search(r"^_MIOU = ([0-9.]+)", cell.source, re.M)
            if m:
                return f"mean IoU {float(m[1]):.2f} over the object classes"
            m = re.search(r"^_MODES = ([0-9]+)[^\n]*\n_QUALITY = ([0-9.]+)", cell.source, re.M)
            if m:
                return f"{m[1]} of 8 modes, {float(m[2]):.2f} of the samples of high quality"
            m = re.search(r"^_PPL_RATIO = ([0-9.]+)", cell.source, re.M)
            return f"perplexity at most {float(m[1]):g} of the unigram model's" if m else "-"
    return "-"


def _settings(source: str, condition: str) -> dict[str, str]:
    """The names and values of the tuple assignment on the line after `condition`."""
    m = re.search(re.escape(condition) + r"[^\n]*\n(?:\s*#[^\n]*\n)?\s*([A-Z_, ]+) = ([^\n#]+)", source)
    if m is None:
        return {}
    names = [n.strip() for n in m[1].split(",")]
    values = [v.strip() for v in m[2].split(",")]
    return dict(zip(names, values))


def _target(settings: dict[str, str], measure: str = "mAP@0.5") -> str:
    if not settings:
        return "-"
    if "TARGET_MODES" in settings:   # a GAN: modes covered and high-quality samples after a number of steps
        return (f"{settings['TARGET_MODES']} of 8 modes, {float(settings['TARGET_QUALITY']):.2f} of the samples of high "
                f"quality after {settings['STEPS']} steps")
    if "STEPS" in settings:   # a language model: a perplexity after a number of updates
        return f"perplexity {float(settings['TARGET']):.1f} after {settings['STEPS']} updates"
    if "N_TRAIN" in settings:  # a detector or a segmenter: mAP@0.5 or mean IoU on held-out scenes after a number of epochs
        return f"{measure} {float(settings['TARGET']):.2f} after {settings['EPOCHS']} epochs"
    return f"{float(settings['TARGET']):.2f} after {settings['EPOCHS']} epochs"


def test_every_assignment_is_listed_with_its_points_and_targets():
    rows = _assignments(GUIDE.read_text())
    names = sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())
    assert sorted(rows) == names
    for name in names:
        nb = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
        points = sum(checks.nbgrader_meta(c).get("points", 0) for c in nb.cells if checks.is_graded_test(c))
        by_hand = sum(checks.nbgrader_meta(c).get("points", 0) for c in nb.cells if checks.is_manual_answer(c))
        points = f"{points} + {by_hand} by hand" if by_hand else points
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and not checks.is_graded_test(c))
        online = _settings(code, "if cfg.fast:")
        offline = {**online, **_settings(code, 'if splits.source == "digits" and cfg.fast:')} if online else {}
        grader = _grader_target(nb)
        measure = "mean IoU" if grader.startswith("mean IoU") else "mAP@0.5"
        assert rows[name] == (str(points), _target(online, measure), _target(offline, measure), grader), name
        intro = re.sub(r"\s+", " ", nb.cells[0].source)
        if grader.startswith("perplexity"):   # the notebook tells the student the target its hidden test uses
            ratio = re.search(r"at most ([0-9.]+) of", grader)[1]
            assert f"It must be at most {ratio} times the perplexity of the unigram model" in intro, name
        elif grader.startswith("mAP"):
            assert f"must be at least {float(grader.split()[-1]):g}." in intro, name
        elif "modes" in grader:
            modes, quality = re.fullmatch(r"(\d+) of 8 modes, ([0-9.]+) of the samples of high quality", grader).groups()
            assert f"must cover at least {modes} of the 8 modes, with at least {float(quality):g} of its samples of high quality" in intro, name
        elif grader.startswith("mean IoU"):
            assert f"must be at least {float(grader.split()[2]):g}." in intro, name
        elif grader != "-":
            assert f"at least {round(float(grader) * 100)}% of them must be classified correctly" in intro, name


def test_the_table_parser_reads_a_row():
    text = "| `a99-x` | 9 X | 25 | 0.93 after 3 epochs | - | 0.90 |"
    assert _assignments(text) == {"a99-x": ("25", "0.93 after 3 epochs", "-", "0.90")}
    text = "| `a99-x` | 9 X | 25 + 2 by hand | 0.93 after 3 epochs | - | 0.90 |"
    assert _assignments(text) == {"a99-x": ("25 + 2 by hand", "0.93 after 3 epochs", "-", "0.90")}
    code = 'if cfg.fast:   # note\n    LIMIT, EPOCHS, TARGET = 4000, 3, 0.93\n'
    assert _target(_settings(code, "if cfg.fast:")) == "0.93 after 3 epochs"
    code = 'if cfg.fast:\n    HIDDEN, STEPS, TARGET = 64, 200, 7.0\n'
    assert _target(_settings(code, "if cfg.fast:")) == "perplexity 7.0 after 200 updates"
