"""Machinery of the hub test: a users' environment, local accounts, a running JupyterHub, users' clients.

Kept apart from the tests so that they read as the workflow they check. Everything here
drives real programs: `useradd`, `jupyterhub` with hub/jupyterhub_config.py, each user's
single-user server over HTTP and its kernels over the kernel websocket protocol.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import requests

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- the users' environment
def world_reachable(path: str | os.PathLike) -> bool:
    """True when any user can reach `path`: every folder on the way searchable, the file readable by all.

    Read from the permission bits, not by trying as another user: the project's own
    interpreter may live where other users cannot reach it (pyenv under /root, say).
    """
    path = Path(os.path.realpath(path))
    for folder in path.parents:
        if not os.stat(folder).st_mode & 0o001:
            return False
    return bool(os.stat(path).st_mode & 0o004)


def world_python() -> str | None:
    """An interpreter of this Python version, with its standard library, that every user can run.

    A hub's users need one they can execute, as a real hub image has one.
    """
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                  f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for exe in dict.fromkeys(candidates):
        if not os.path.exists(exe) or not world_reachable(exe):
            continue
        probe = subprocess.run([exe, "-c", "import os, sys; print(sys.version_info[:2] == %r, os.__file__)"
                                % (tuple(sys.version_info[:2]),)], capture_output=True, text=True)
        ok, _, stdlib = probe.stdout.strip().partition(" ")
        if probe.returncode == 0 and ok == "True" and world_reachable(stdlib):
            return exe
    return None


def _link_or_copy_tree(src: Path, dest: Path) -> None:
    """Hard links where the file system allows (fast, no space), else a copy."""
    try:
        subprocess.run(["cp", "-al", str(src), str(dest)], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest, symlinks=True)


def build_user_env(dest: Path, wheel: Path, python: str) -> Path:
    """The users' environment, as a hub image would hold it, built in seconds from this venv.

    A virtual environment on an interpreter every user can run, with this project's
    installed packages (hard-linked: nothing is downloaded), the course library installed
    from `wheel` (not the editable checkout), console scripts, a kernel spec that points at
    it, and the course's hub settings (hub/image/). Jupyter's data and config folders are
    copied, not linked, because Jupyter writes into them.
    """
    subprocess.run([python, "-m", "venv", "--without-pip", str(dest)], check=True)
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    target = dest / "lib" / site.parent.name / "site-packages"
    shutil.rmtree(target)
    _link_or_copy_tree(site, target)
    for editable in list(target.glob("__editable__*dlcourse*")) + list(target.glob("dlcourse-*.dist-info")):
        shutil.rmtree(editable) if editable.is_dir() else editable.unlink()
    for folder in ("share/jupyter", "etc/jupyter"):
        if (Path(sys.prefix) / folder).is_dir():
            shutil.copytree(Path(sys.prefix) / folder, dest / folder, dirs_exist_ok=True)
    shutil.copytree(ROOT / "hub" / "image" / "etc", dest / "etc", dirs_exist_ok=True)
    py = dest / "bin" / "python"
    spec = dest / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    data = json.loads(spec.read_text())
    data["argv"][0] = str(py)
    spec.write_text(json.dumps(data, indent=1))
    for dist in importlib.metadata.distributions(path=[str(target)]):
        for ep in dist.entry_points:
            if ep.group == "console_scripts":
                module, _, attr = ep.value.partition(":")
                script = dest / "bin" / ep.name
                script.write_text(f"#!{py}\nimport sys\nfrom {module} import {attr.split('.')[0]} as _main\n"
                                  f"sys.exit(_main{''.join('.' + a for a in attr.split('.')[1:])}())\n")
                script.chmod(0o755)
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, env=env)
    for path in [dest, *dest.rglob("*")]:  # readable by all, writable by root only
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        elif path.stat().st_nlink == 1:  # our own copies; the hard links keep this venv's modes
            path.chmod(0o755 if os.access(path, os.X_OK) else 0o644)
    return dest


# ---------------------------------------------------------------- local accounts
def add_group(name: str) -> None:
    if subprocess.run(["getent", "group", name], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", name], check=True)


def add_user(name: str, group: str, password: str) -> Path:
    """A local account with a home folder and a password, in `group` (replaced if it exists)."""
    remove_user(name)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", "--gid", group, name], check=True)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    home = Path(os.path.expanduser(f"~{name}"))
    home.chmod(0o700)  # as a hub's home folders should be: private
    return home


def remove_user(name: str) -> None:
    if subprocess.run(["id", "-u", name], capture_output=True).returncode == 0:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)  # that user's processes only
        subprocess.run(["userdel", "--remove", name], capture_output=True)


def remove_group(name: str) -> None:
    subprocess.run(["groupdel", name], capture_output=True)


SUDOERS_FILE = Path("/etc/sudoers.d/dlcourse-hubtest")


def allow_kernels(account: str, group: str, rule: str) -> None:
    """The guide's kernel group (with `account` in it) and sudoers rule, checked by visudo."""
    add_group(group)
    subprocess.run(["usermod", "--append", "--groups", group, account], check=True)
    tmp = SUDOERS_FILE.with_name(".dlcourse-hubtest.new")  # sudo skips names with a dot
    tmp.write_text(rule)
    tmp.chmod(0o440)
    subprocess.run(["visudo", "--check", "--file", str(tmp)], check=True, capture_output=True)
    tmp.rename(SUDOERS_FILE)


def disallow_kernels(group: str) -> None:
    SUDOERS_FILE.unlink(missing_ok=True)
    remove_group(group)


def run_as(user: str, cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a command as a local user (for checks of what that user can and cannot read)."""
    return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *cmd],
                          capture_output=True, text=True, cwd="/", **kw)


def as_nobody(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command as uid/gid 65534 with no other groups (what the sandbox's setpriv does), from "/"."""
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd],
                          capture_output=True, text=True, cwd="/", env=env or {"PATH": "/usr/bin:/bin"})


def processes(*words: str) -> list[dict]:
    """Running processes whose command line holds every one of `words` as an argument:
    [{"pid", "argv", "cwd"}] (read from /proc, as root)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
            cwd = os.readlink(Path(entry.path, "cwd"))
        except OSError:  # gone meanwhile
            continue
        if all(word in argv for word in words):
            found.append({"pid": int(entry.name), "argv": argv, "cwd": cwd})
    return found


# ---------------------------------------------------------------- the hub
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    """JupyterHub started from hub/jupyterhub_config.py, on loopback ports of its own."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "jupyterhub.log"
        config = workdir / "jupyterhub_test_config.py"
        # The course's configuration, unchanged; only the ports are the test's own.
        config.write_text(
            "c = get_config()  # noqa: F821\n"
            f"load_subconfig({str(ROOT / 'hub' / 'jupyterhub_config.py')!r})  # noqa: F821\n"
            f"c.JupyterHub.bind_url = {self.url + '/'!r}\n"
            f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{free_port()}'\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'\n")
        self.env = dict(os.environ, **env)
        self.proc = None
        self.config = config

    def start(self, timeout: float = 90) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(self.config)],
                                         cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"jupyterhub did not answer within {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the hub stops the servers it spawned and the proxy
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class HubUser:
    """One person using the hub: logs in with a password, then drives their own server."""

    def __init__(self, hub: Hub, name: str, password: str):
        self.hub, self.name, self.password = hub, name, password
        self.session = requests.Session()
        self.token = None

    # -------------------------------------------------------------- login and server
    def login(self) -> None:
        """The login form, as a browser submits it; then an API token of this user's own."""
        hub = self.hub.url
        self.session.get(f"{hub}/hub/login", timeout=30)
        xsrf = self.session.cookies.get("_xsrf")
        r = self.session.post(f"{hub}/hub/login?next=", data={"username": self.name, "password": self.password,
                                                               "_xsrf": xsrf}, allow_redirects=False, timeout=60)
        if r.status_code != 302:
            raise RuntimeError(f"{self.name}: login failed (HTTP {r.status_code})")
        r = self.session.post(f"{hub}/hub/api/users/{self.name}/tokens", json={"note": "hub test", "expires_in": 3600},
                              headers={"X-XSRFToken": self.session.cookies.get("_xsrf")}, timeout=30)
        r.raise_for_status()
        self.token = r.json()["token"]

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    def start_server(self) -> None:
        r = requests.post(f"{self.hub.url}/hub/api/users/{self.name}/server", headers=self.headers, timeout=60)
        if r.status_code not in (201, 202, 400):  # 400: already running
            raise RuntimeError(f"{self.name}: cannot start server: HTTP {r.status_code} {r.text}")

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = requests.get(f"{self.hub.url}/hub/api/users/{self.name}", headers=self.headers, timeout=30).json()
            server = info.get("servers", {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(1)
        raise RuntimeError(f"{self.name}: server not ready within {timeout} s\n{self.hub.tail()}")

    # -------------------------------------------------------------- the user's server
    def api(self, method: str, path: str, **kw) -> requests.Response:
        """A request to this user's server (`path` after /user/NAME/)."""
        r = requests.request(method, f"{self.hub.url}/user/{self.name}/{path.lstrip('/')}", headers=self.headers,
                             timeout=kw.pop("timeout", 120), **kw)
        return r

    def read(self, path: str) -> dict:
        r = self.api("GET", f"api/contents/{quote(path)}?content=1")
        r.raise_for_status()
        return r.json()

    def write_notebook(self, path: str, nb: dict) -> None:
        r = self.api("PUT", f"api/contents/{quote(path)}", json={"type": "notebook", "format": "json", "content": nb})
        r.raise_for_status()

    def assignments(self, course_id: str) -> list[dict]:
        """What the Assignment List shows: released, fetched and submitted assignments."""
        return self._listing(self.api("GET", "assignments", params={"course_id": course_id}))

    def assignment_action(self, action: str, course_id: str, assignment: str) -> list[dict]:
        """The Assignment List's buttons: fetch, submit, fetch_feedback; returns the new listing."""
        return self._listing(self.api("POST", f"assignments/{action}",
                                      data={"course_id": course_id, "assignment_id": assignment}))

    def _listing(self, r: requests.Response) -> list[dict]:
        r.raise_for_status()
        data = json.loads(r.text)
        if not data.get("success"):
            raise RuntimeError(f"{self.name}: {r.request.url}: {data.get('value') or data}")
        return data["value"]

    def execute_notebook(self, path: str, timeout: float = 300) -> dict:
        """Run every code cell of a notebook in a kernel on this user's server, save it, return it.

        What "Run All" then "Save" does in the browser: a kernel started through the
        server's REST API, each cell sent as an execute_request over the kernel websocket,
        outputs collected from IOPub until the kernel is idle again.
        """
        import websocket

        nb = self.read(path)["content"]
        kernel = self.api("POST", "api/kernels", json={"name": "python3"}).json()
        base = self.hub.url.replace("http://", "ws://")
        ws = websocket.create_connection(f"{base}/user/{self.name}/api/kernels/{kernel['id']}/channels",
                                         header=[f"Authorization: token {self.token}"], timeout=timeout)
        session = uuid.uuid4().hex
        try:
            for count, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                msg_id = uuid.uuid4().hex
                ws.send(json.dumps({
                    "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": session,
                               "username": self.name, "version": "5.3", "date": ""},
                    "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                    "content": {"code": source, "silent": False, "store_history": True, "user_expressions": {},
                                "allow_stdin": False, "stop_on_error": False}}))
                outputs, deadline = [], time.monotonic() + timeout
                while time.monotonic() < deadline:
                    msg = json.loads(ws.recv())
                    if msg.get("parent_header", {}).get("msg_id") != msg_id or msg.get("channel") != "iopub":
                        continue
                    kind, content = msg["msg_type"], msg["content"]
                    if kind == "stream":
                        outputs.append({"output_type": "stream", "name": content["name"], "text": content["text"]})
                    elif kind in ("execute_result", "display_data"):
                        out = {"output_type": kind, "data": content["data"], "metadata": content.get("metadata", {})}
                        if kind == "execute_result":
                            out["execution_count"] = content["execution_count"]
                        outputs.append(out)
                    elif kind == "error":
                        outputs.append({"output_type": "error", "ename": content["ename"], "evalue": content["evalue"],
                                        "traceback": content["traceback"]})
                    elif kind == "status" and content["execution_state"] == "idle":
                        break
                cell["outputs"], cell["execution_count"] = outputs, count + 1
        finally:
            ws.close()
            self.api("DELETE", f"api/kernels/{kernel['id']}")
        self.write_notebook(path, nb)
        return nb

    def run_python(self, code: str) -> str:
        """Run code in a fresh kernel on this user's server (as this user); returns what it printed."""
        tmp = f"hubtest-{uuid.uuid4().hex[:8]}.ipynb"
        self.write_notebook(tmp, {"cells": [{"cell_type": "code", "source": code, "metadata": {}, "outputs": [],
                                             "execution_count": None}],
                                  "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
                                  "nbformat": 4, "nbformat_minor": 5})
        nb = self.execute_notebook(tmp)
        self.api("DELETE", f"api/contents/{tmp}")
        outputs = nb["cells"][0]["outputs"]
        errors = [o for o in outputs if o["output_type"] == "error"]
        if errors:
            raise RuntimeError(f"{self.name}: {errors[0]['ename']}: {errors[0]['evalue']}")
        return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")


def new_password() -> str:
    return secrets.token_urlsafe(12)


# ---------------------------------------------------------------- a person in the browser
def browser_login(browser, hub_url: str, name: str, password: str):
    """A new browser context logged in through the hub's login form, as a person does: (context, page)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{hub_url}/hub/login", wait_until="load")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"**/user/{name}/**", timeout=120_000)
    return context, page
