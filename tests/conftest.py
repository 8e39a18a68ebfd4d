"""The suite's root conftest. Its presence makes pytest put tests/ on sys.path (rootdir-style
"prepend" imports), so test modules in every folder, tests/browser/ and tests/hub/ included,
can `import suite_helpers` (skips that fail in CI, the loopback server, Chromium)."""
