"""The real download path of dlcourse.datasets.fetch, against a loopback HTTP server.

A real ``http.server`` on 127.0.0.1 (random port) serves a temporary copy of the offline
mirror (../shared/data); DLCOURSE_DATA_URL points fetch at it. Nothing here reaches the
internet: the "offline" cases point at a loopback port on which nothing listens.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from dlcourse import datasets
from dlcourse.datasets import fetch as fetch_mod
from dlcourse.datasets.registry import load_registry, parse_registry

pytestmark = pytest.mark.network


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        cut = self.server.cut_off.get(self.path.lstrip("/"))
        if cut is None:
            return super().do_GET()
        # Announce the whole file but send only `cut` bytes, then close the connection.
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:cut])
        self.wfile.flush()
        self.close_connection = True


class LoopbackServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        handler = functools.partial(_Handler, directory=str(self.root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.requests = []
        self.httpd.cut_off = {}
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def cut_off(self, relpath: str, nbytes: int) -> None:
        self.httpd.cut_off[relpath] = nbytes

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
