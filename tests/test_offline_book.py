"""The chapter 1-3 book notebooks as a new user meets them offline: no network, no mirror, no cache.

Each notebook is executed (fast profile, one thread) in a kernel that sees:
  - DLCOURSE_DATA_MIRROR pointing at a folder that does not exist (no ../shared mirror),
  - DLCOURSE_DATA_DIR and TMPDIR pointing at empty folders (no cached copy anywhere),
  - DLCOURSE_DATA_URL pointing at a loopback server that answers every request with 404 and
    records it (no download can succeed, and we see who tried).
Every notebook must run to the end; the pages that use data must say that they used the
bundled stand-in (scikit-learn's digits) and must not warn about it a second time; pages
that need no data must not try to download anything. The executions are shared by all
tests of this module (module-scoped fixture). They run each notebook a second time (the book
build ran it once), so they belong to `make grading-test` (marker e2e), which CI runs after
`make test`.
"""
from __future__ import annotations

import pathlib
import re
import time
from dataclasses import dataclass, field

import nbformat
import pytest

from suite_helpers import LoopbackServer, NotFound

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.xdist_group("offline-book")]

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.relative_to(ROOT).as_posix() for c in ("01-convolution", "02-building-blocks", "03-lenet")
                   for p in (ROOT / "book" / c).glob("*.ipynb")) + ["book/10-rnn/char-lm.ipynb"]



@dataclass
class Run:
    nb: nbformat.NotebookNode
    seconds: float
    error: str | None
    requests: list[str] = field(default_factory=list)

    def text(self, name: str = "stdout") -> str:
        """Everything the page shows in one output stream (or in text/plain results)."""
        out = []
        for cell in self.nb.cells:
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream" and o.get("name") == name:
                    out.append(o["text"])
                elif name == "stdout" and "text/plain" in o.get("data", {}):
                    out.append(o["data"]["text/plain"])
        return "".join(out)


@pytest.fixture(scope="module")
def offline_runs(tmp_path_factory) -> dict[str, Run]:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    tmp = tmp_path_factory.mktemp("offline")
    (tmp / "cache").mkdir()
    (tmp / "tmp").mkdir()
    runs = {}
    with LoopbackServer(handler=NotFound) as server, pytest.MonkeyPatch.context() as mp:
        env = {"DLCOURSE_DATA_MIRROR": str(tmp / "no-mirror"), "DLCOURSE_DATA_DIR": str(tmp / "cache"),
               "TMPDIR": str(tmp / "tmp"), "DLCOURSE_DATA_URL": server.url,
               "DLCOURSE_THREADS": "1", "OMP_NUM_THREADS": "1", "DLCOURSE_PROGRESS": "0"}
        # the kernels inherit this environment
        for key, value in env.items():
            mp.setenv(key, value)
        for key in ("DLCOURSE_OFFLINE", "DLCOURSE_DATA_REGISTRY", "MPLBACKEND"):
            mp.delenv(key, raising=False)
        for rel in NOTEBOOKS:
            path = ROOT / rel
            nb = nbformat.read(str(path), as_version=4)
            before, start, error = len(server.requests), time.perf_counter(), None
            client = NotebookClient(nb, timeout=300, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}})
            try:
                client.execute()
            except CellExecutionError as exc:
                error = str(exc)
            runs[rel] = Run(nb, time.perf_counter() - start, error, server.requests[before:])
    for rel, run in runs.items():
        print(f"offline: {rel} ran in {run.seconds:.1f} s, {len(run.requests)} download attempts")
    return runs


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_notebook_runs_to_the_end_with_no_network_and_no_mirror(offline_runs, rel):
    run = offline_runs[rel]
    assert run.error is None, f"{rel} stopped offline:\n{run.error}"
    errors = [o for c in run.nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{rel}: error outputs {errors}"


def _declared(rel: str) -> list[str]:
    return nbformat.read(str(ROOT / rel), as_version=4).metadata.get("dlcourse", {}).get("prefetch", [])


def test_pages_with_data_say_which_data_they_used(offline_runs):
    with_data = [rel for rel in NOTEBOOKS if _declared(rel)]
    assert with_data == ["book/03-lenet/training.ipynb", "book/10-rnn/char-lm.ipynb"]
    out = offline_runs["book/10-rnn/char-lm.ipynb"].text()
    assert re.search(r"^timemachine: not available \(.*\); the loaders will use the English text of Python's own "
                     r"help topics \(the standard library's pydoc_data\) instead$", out, re.M), out
    assert "held-out perplexity of the unigram model" in out   # the page ran to its numbers
    for rel in with_data[:1]:
        out = offline_runs[rel].text()
        for name in _declared(rel):  # the setup cell: one line per data set, naming the stand-in
            assert re.search(rf"^{name}: not available \(.*\); the loaders will use scikit-learn's bundled "
                             r"8x8 handwritten digits, upsampled to 28x28 instead$", out, re.M), out
        assert re.search(r"data: [\d,]+ training and [\d,]+ validation images from scikit-learn's "
                         r"1,797 8x8 handwritten digits", out), out
        assert "MNIST's official" not in out
        assert "the 98% target for MNIST does not apply" in out


def test_the_stand_in_is_announced_once_not_warned_again(offline_runs):
    """ensure() said it in the setup cell; a second warning in stderr would only repeat it (and
    `make book-strict` turns stderr output into a build warning)."""
    for rel in NOTEBOOKS:
        stderr = offline_runs[rel].text("stderr")
        assert "falling back" not in stderr and "DataUnavailableError" not in stderr, (rel, stderr)


def test_only_declared_data_is_requested(offline_runs):
    from dlcourse.datasets import load_registry

    registry = load_registry()
    for rel in NOTEBOOKS:
        wanted = {"/" + registry[name].path for name in _declared(rel)}
        asked = set(offline_runs[rel].requests)
        assert asked <= wanted, f"{rel} tried to download {sorted(asked - wanted)}"
        if wanted:  # the setup cell (and the loader) really tried before falling back
            assert asked == wanted, (rel, asked)


def _setup_cell_output(run: Run) -> str:
    """What the cell that calls dlcourse.setup(...) shows (its stdout and its result)."""
    cells = [c for c in run.nb.cells if c.cell_type == "code" and "dlcourse.setup(" in c.source]
    assert len(cells) == 1, "expected one setup cell"
    return "".join(o["text"] if o.get("output_type") == "stream" and o.get("name") == "stdout"
                   else o.get("data", {}).get("text/plain", "") for o in cells[0].get("outputs", []))


def test_pages_print_the_device_and_threads_they_found(offline_runs):
    """The setup cell states the device the library picked and the thread budget it set.

    The reference is computed here: the kernels inherit this process's environment, so
    `choose_device("auto")` answers what theirs should, and the fixture sets DLCOURSE_THREADS=1,
    so a page that printed another device or the machine's core count would be wrong.
    """
    import torch

    from dlcourse.runtime import choose_device

    dev = re.escape(str(choose_device("auto")))
    # the three ways the pages print the RunConfig: its repr (a bare `cfg` or print(cfg)), a
    # short line (chapter 3's architectures), and the training page's sentence with the GPU count
    forms = [rf"RunConfig\(profile='fast', device=device\(type='{re.escape(choose_device('auto').type)}'"
             rf"(, index=\d+)?\), seed=0, threads=1\)",
             rf"^fast {dev} threads: 1$",
             rf"^computing on {dev}( \(.*\))?; CUDA GPUs visible: {torch.cuda.device_count()}; "
             rf"CPU threads for PyTorch: 1$"]
    for rel in NOTEBOOKS:
        out = _setup_cell_output(offline_runs[rel])
        assert any(re.search(f, out, re.M) for f in forms), f"{rel}: setup cell printed {out!r}"
