# Self-installing targets. `make book` and `make test` work on a fresh machine: they
# create .venv from requirements.txt when it is missing or out of date.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every notebook-running process gets its share of the cores (see dlcourse/runtime.py).
export DLCOURSE_THREADS ?= 1
export PYTHONHASHSEED := 0

.PHONY: help venv vendor system-deps book book-strict test unit checks-then-unit unit-then-hub lines-joined grading-test mutation-test site-test browser-test release release-check grade-demo bench freeze clean wheel hub-deps platform-test hub-test install-source-test

help:
	@echo "make book        build the HTML book into _build/html (fast profile, cached execution)"
	@echo "make test        everything but the mutants: unit tests, solutions graded, releases checked, book built -W, browser tests"
	@echo "make grading-test  every assignment graded with planted mistakes and other valid answers (CI runs it after make test)"
	@echo "make mutation-test  the planted mistakes alone"
	@echo "make release     regenerate assignments/ from solutions/ (and prove, with the grader, solution passes / release fails)"
	@echo "make grade-demo  grade the built-in sample submissions for a01"
	@echo "make bench       run the benchmarks under bench/ and print their tables"
	@echo "make platform-test  the course on a real JupyterHub (as root) and the install source as Colab meets it"

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

# bubblewrap (grader sandbox) and chromium (browser tests) come from Debian. Installed
# when we are root and they are missing; otherwise the tests that need them say so.
system-deps:
	@missing=""; command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	 command -v chromium >/dev/null || missing="$$missing chromium"; \
	 command -v npm >/dev/null || missing="$$missing npm"; \
	 command -v git >/dev/null || missing="$$missing git"; \
	 command -v sudo >/dev/null || missing="$$missing sudo"; \
	 if [ -n "$$missing" ]; then \
	   if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	     echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	   else echo "warning: missing$$missing (install them with apt-get as root)"; fi; \
	 fi

# MathJax, the widget manager and require.js from the npm registry, hash-checked, so
# that the built site works with no internet access (see book/_vendor/README.md).
vendor: venv
	$(PY) book/_vendor/fetch.py

# book/_tools/build_guard.py: `before` re-executes the pages whose data, library or machine
# changed since they were cached; `after` lists the pages whose notebook raised and fails.
GUARD := $(PY) book/_tools/build_guard.py

# The course library as a wheel, published with the site at _static/dist/ (book/_ext/launch_links.py
# copies it in after checking it matches dlcourse/): the notebooks' setup cells install it from there.
WHEEL_DIR := _build/dist
wheel: venv
	$(PY) -m autograder.publish wheel $(WHEEL_DIR)

# configurable-http-proxy for the hub (tests/hub/, hub/jupyterhub_config.py), from the npm
# registry at the versions and hashes of hub/package-lock.json, into hub/node_modules/.
hub-deps: system-deps
	@test -x hub/node_modules/.bin/configurable-http-proxy || \
	 if command -v npm >/dev/null; then npm ci --prefix hub --no-audit --no-fund --ignore-scripts --loglevel=error; \
	 else echo "warning: npm is missing, so the hub test will skip (apt-get install npm as root)"; fi

book: venv vendor wheel
	$(GUARD) before _build
	$(VENV)/bin/jupyter-book build . --path-output . -q
	$(GUARD) after _build
	@echo "Book built: open $(CURDIR)/_build/html/index.html"

book-strict: venv vendor wheel
	$(GUARD) before _build
	$(VENV)/bin/jupyter-book build . --path-output . -W -n --keep-going -q; status=$$?; \
	  $(GUARD) after _build && exit $$status

unit: venv vendor system-deps
	$(PY) -m pytest -m "not browser and not hub and not site and not mutation and not variants and not e2e" -n 2 --dist loadgroup --durations=25

# Every assignment graded with planted mistakes, each caught by the cell meant to catch it
# (tests/test_aNN.py, tests/mutation_helpers.py), with correct answers written other valid
# ways, which keep full marks, and with weights brought from elsewhere; and the end-to-end
# gradings (marker e2e): the hostile batch (tests/hostile/scenarios.py) with its rerun, replay
# and Dask cluster, a loaded machine, a regrade, late work, a small term, a03 graded on real
# data from the command line, and the book's chapter 1-3 notebooks run offline. Kept out of
# `make test` so that it stays within its 20 minutes on two cores at thirteen chapters; CI
# (.ci/run) runs it after `make test`.
# `make mutation-test`: the mutants only.
grading-test: venv vendor system-deps
	$(PY) -m pytest -m "mutation or variants or e2e" -n 2 --dist loadgroup --durations=10

mutation-test: venv vendor system-deps
	$(PY) -m pytest -m mutation -n 2 --dist loadgroup

# Two workers: the desktop visits and explorers (tests/browser/test_site.py) on one, the phone-width
# visits on the other, each with its own Chromium (much of a page visit is waiting for the page to settle)
browser-test: venv system-deps
	$(PY) -m pytest -m browser -n 2 --dist loadgroup

# The hub workflow end to end (needs root; skips otherwise; it installs the course from the wheel,
# not the site) and the released notebook installing the library from the built site, as in Colab.
# `make platform-test` runs both.
platform-test: venv system-deps hub-deps
	$(PY) -m pytest -m "hub or site"

hub-test: venv system-deps hub-deps
	$(PY) -m pytest -m hub

install-source-test: venv
	$(PY) -m pytest -m site

# Two lines side by side: the release check and the unit tests (two pytest workers), then the hub
# test (the hub's npm packages are fetched there), which needs only the wheel; and the book build
# (one notebook at a time) followed by the browser tests. The book, the longer line, starts as soon
# as the environment is ready. The install-source test, which needs the built site, runs when the
# book and the hub test are done. Every kernel uses one thread; the unit tests end minutes before
# the book, and the hub test fills that time instead of waiting for the book.
test: venv system-deps vendor wheel
	$(MAKE) -j2 --output-sync=target --no-print-directory lines-joined site-test
	@echo "make test: all passed"

checks-then-unit: venv
	$(MAKE) --no-print-directory release-check
	$(MAKE) --no-print-directory unit

unit-then-hub: checks-then-unit
	$(MAKE) --no-print-directory hub-test

lines-joined: unit-then-hub book-strict
	$(MAKE) --no-print-directory install-source-test

site-test: book-strict
	$(MAKE) --no-print-directory browser-test

release: venv
	$(PY) -m autograder release --all

# assignments/ is current and leaks nothing; the proofs that the grader gives the solution
# every point and the untouched release none run in the unit tests (tests/test_aNN.py)
release-check: venv
	$(PY) -m autograder release --all --check --no-prove

grade-demo: venv system-deps
	$(PY) -m autograder demo

bench: venv
	@for b in bench/*/run.py bench/grading/hostile.py bench/grading/load.py; do echo "== $$b"; $(PY) $$b || exit 1; done

freeze: venv
	$(PY) -m pip freeze --exclude-editable | sed 's/+cpu$$//' > constraints.txt

clean:
	rm -rf _build .pytest_cache
