"""What the tests of a real server share: ``Served``, ``captioner serve`` in a process."""

import os
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

httpx = pytest.importorskip("httpx2")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """``captioner serve`` on a free port of 127.0.0.1, ready (its searches compiled)."""

    def __init__(self, *options):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "captioner", "serve", "--port", str(self.port),
             "--max-batch", "8", *options], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.communicate()
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.process.kill()
        pytest.fail("the server did not become ready in 180 s")

    def wait(self, timeout):
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
