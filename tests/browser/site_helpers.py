"""Paths and configuration the browser tests share (kept out of conftest.py so that test
modules can import them by a name no other conftest shadows)."""
from __future__ import annotations

import os
import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
# A common phone's viewport in CSS pixels (width, height): the width the book must fit.
PHONE_VIEWPORT = (390, 844)


def site_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")).resolve()


def toc_pages() -> list[str]:
    """Docnames of every page in _toc.yml, root first (e.g. 'book/01-convolution/index')."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return pages


def book_config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())
