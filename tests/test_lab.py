"""`make lab` opens the notebooks the way users open them: JupyterLab serves an executed notebook.

The server runs headless on a free local port with its config, data, runtime and workspace
folders in a temporary directory (nothing is written into the checkout) plus the config folder
``make lab`` adds, answers HTTP 200 for the lab page of an executed notebook and for the notebook
itself, with the announcements plugin (the "Jupyter news?" prompt) off, and is stopped by its PID.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "03_lr_search.ipynb"
NEWS = "@jupyterlab/apputils-extension:announcements"  # asks "Would you like to get notified about ... news?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read()


def _lab_config_path() -> Path:
    """The config folder ``make lab`` puts on ``JUPYTER_CONFIG_PATH``."""
    make = (REPO / "Makefile").read_text()
    assert "$(LAB_CONFIG) $(BIN)/jupyter lab" in make
    (folder,) = re.findall(r'JUPYTER_CONFIG_PATH="\$\(CURDIR\)/([^$"]+)', make)
    return REPO / folder


def test_jupyterlab_serves_an_executed_notebook(tmp_path):
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists() or shutil.which("jupyter-lab", path=str(jupyter.parent)) is None:
        pytest.fail("JupyterLab is not installed: `make lab` / `make test` install the `lab` extra")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "IPYTHONDIR": str(tmp_path / "ipython"), "JUPYTER_CONFIG_PATH": str(_lab_config_path())}
    proc = subprocess.Popen([str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO / 'notebooks'}",
                             "--ServerApp.open_browser=False", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
                             "jupyterlab.NeverCheckForUpdate", *(["--allow-root"] if os.geteuid() == 0 else [])],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline, status = time.time() + 90, None
        while time.time() < deadline and proc.poll() is None:
            try:
                status, _ = _get(f"http://127.0.0.1:{port}/api?token={token}")
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, f"JupyterLab did not come up: {proc.stderr.read1(4000) if proc.poll() is not None else ''}"
        status, page = _get(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}")
        assert status == 200 and b"JupyterLab" in page
        (config,) = re.findall(rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
        assert NEWS in json.loads(config)["disabledExtensions"]
        status, body = _get(f"http://127.0.0.1:{port}/api/contents/{NOTEBOOK}?token={token}")
        nb = json.loads(body)["content"]
        assert status == 200 and nb["cells"][0]["cell_type"] == "markdown"
        assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")  # executed, not blank
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode is not None
