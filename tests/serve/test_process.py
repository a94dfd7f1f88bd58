"""The real server process (``captioner serve``): SIGTERM under load answers every request
it accepted and exits 0; Ctrl-C exits 130; a second signal does not wait; an address
that is taken is one line and exit 2."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT
from tests.serve.helpers import Served, httpx

SAMPLE = os.path.join(ROOT, "assets", "samples", "shapes_004201.png")
pytestmark = pytest.mark.slow  # starts servers: .ci/run's slow pass


def test_sigterm_under_load_answers_every_accepted_request_and_exits_0():
    served = Served("--grace", "30")
    with open(SAMPLE, "rb") as handle:
        image = handle.read()
    outcomes, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            try:  # a connection per request: refused once the server stops accepting
                with httpx.Client(timeout=60) as session:
                    response = session.post(served.url + "/v1/caption", content=image,
                                            headers={"content-type": "image/png"})
                outcomes.append(("answered", response.status_code, time.monotonic()))
            except httpx.ConnectError:
                outcomes.append(("refused", None, time.monotonic()))
                time.sleep(0.05)
            except httpx.TransportError as error:  # reset: accepted by the kernel, never
                # by the server, as it closed its socket (the server's count says which)
                outcomes.append(("reset", repr(error), time.monotonic()))
    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    signalled = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    status = served.wait(60)
    stop.set()
    for thread in threads:
        thread.join(60)
    answered = [o for o in outcomes if o[0] == "answered"]
    _, log = served.process.communicate()
    assert status == 0, log
    # every request the server took in, it answered, and the answer arrived
    counted = re.search(r"requests answered: .*?/v1/caption (\d+)", log)
    assert counted and int(counted.group(1)) == len(answered), log
    assert len([o for o in outcomes if o[0] == "reset"]) <= 16  # at most one per client
    assert {code for _, code, _ in answered} <= {200, 503}
    assert sum(code == 200 for _, code, _ in answered) > 20
    assert any(at > signalled for kind, _, at in outcomes if kind == "refused")


def test_ctrl_c_exits_130_and_a_second_signal_does_not_wait():
    served = Served()
    served.process.send_signal(signal.SIGINT)
    assert served.wait(60) == 130

    served = Served("--grace", "120")
    slow = socket.create_connection(("127.0.0.1", served.port))  # an upload that stalls
    slow.sendall(b"POST /v1/caption HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                 b"Content-Length: 100000\r\n\r\n" + b"\0" * 1000)
    time.sleep(0.5)
    served.process.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert served.process.poll() is None  # waiting for the upload it accepted
    started = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    assert served.wait(10) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 5
    slow.close()


def test_an_address_in_use_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "captioner", "serve", "--port", str(port)], cwd=ROOT,
            capture_output=True, text=True, timeout=180,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "Traceback" not in result.stderr


def test_each_model_of_an_ensemble_is_checked_before_anything_loads(tmp_path):
    from tests.commands.helpers import assert_one_line_error, captioner
    missing = tmp_path / "nothing"
    assert_one_line_error(captioner("serve", "--model", os.path.join(ROOT, "assets", "model"),
                                    "--model", missing),
                          f"Model folder not found: {missing}")
