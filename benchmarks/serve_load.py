"""``captioner serve`` under load and faults, on 127.0.0.1 only, every client bounded in
requests and seconds.

    python -m benchmarks.serve_load [--only api,load,faults,soak,workers,jsonl]
                                    [--requests 600] [--seconds 60] [--work /tmp/captioner-serve]

Prints one JSON line per figure, each saying what it measured:

- api: images/s of ``ImageCaptioner.caption`` on the sample images in one process (batch
  16, files read from disk), the in-process ceiling the server is held to.
- load: the server (bundled model, ``--max-batch 32``) driven by an asyncio client of
  kept-alive connections (HTTP/1.1 written by hand, the lightest client there is) at
  concurrency 1, 8, 32 and 64, one image per request:
  requests/s, images/s, p50/p95/p99 latency, mean batch size (the server's own
  histogram), statuses; and ``/healthz`` latency while the model is busy (at concurrency
  32, from a process of its own).
- faults: valid requests interleaved with malformed multipart bodies, truncated images,
  bodies over the limit, unknown options, uploads that stall past the deadline and
  uploads abandoned halfway: every status, and whether every valid request got 200 and
  every bad one a 4xx with a one-line JSON error.
- soak: the server's RSS after warm-up and after 10,000 requests (load and faults count).
- workers: RSS of each worker with ``--workers 2``.
- jsonl: peak RSS of ``captioner caption DIR --jsonl`` over 1,000 and 10,000 images (hard
  links to the samples, so only the count differs).

The client shares the machine's cores with the server: on 2 cores its own work (an
HTTP request costs it about as much as it costs the server) caps the figures.
"""

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

from benchmarks.common import ROOT, emit

SAMPLES = os.path.join(ROOT, "assets", "samples")
PHASES = ("api", "load", "faults", "soak", "workers", "jsonl")


def samples():
    return [open(os.path.join(SAMPLES, name), "rb").read() for name in sorted(os.listdir(SAMPLES))]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid):
    """Resident memory of a process, MB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as handle:
        return int(re.search(r"VmRSS:\s+(\d+)", handle.read()).group(1)) / 1024


def children(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found += [int(child) for child in handle.read().split()]
    return found


class Server:
    """``captioner serve`` on a free port of 127.0.0.1, started and ready."""

    def __init__(self, *options, ready_count=1):
        import httpx2
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "captioner", "serve", "--port", str(self.port), *options],
            cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started, ready = time.monotonic(), 0
        while ready < ready_count:
            if self.process.poll() is not None or time.monotonic() - started > 300:
                raise SystemExit(f"the server did not start: {self.process.stderr.read()}")
            try:
                ready = ready + 1 if httpx2.get(self.url + "/readyz").status_code == 200 else 0
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
        self.start_seconds = time.monotonic() - started

    def batches(self):
        """(batches, images) decoded so far, from the server's metrics."""
        import httpx2
        text = httpx2.get(self.url + "/metrics").text
        count = float(re.search(r"^captioner_batch_size_count (\S+)", text, re.M).group(1))
        total = float(re.search(r"^captioner_batch_size_sum (\S+)", text, re.M).group(1))
        return count, total

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None


# --- phases -------------------------------------------------------------------------------
def api_rate(repeats=3):
    """Images/s of ImageCaptioner.caption over the samples, repeated to 96 images."""
    from captioner.tasks import ImageCaptioner
    task = ImageCaptioner.from_folder(os.path.join(ROOT, "assets", "model"))
    paths = [os.path.join(SAMPLES, name) for name in sorted(os.listdir(SAMPLES))] * 16
    task.caption(paths[:32], batch_size=16)  # compiles
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        task.caption(paths, batch_size=16)
        best = max(best, len(paths) / (time.perf_counter() - started))
    return best


class Connection:
    """A kept-alive HTTP/1.1 connection, written by hand: the lightest client asyncio
    allows, so that the load's client takes as little of the shared cores as it can
    (an httpx client costs about as much per request as the server)."""

    def __init__(self, port):
        self.port, self.reader, self.writer = port, None, None

    async def post(self, path, body, content_type="image/png"):
        """(status, body) of a POST."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                          f"{content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                          + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        answer = await self.reader.readexactly(int(fields.get("content-length", 0)))
        if fields.get("connection") == "close":
            self.close()
        return status, answer

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def drive(port, concurrency, requests, seconds, images):
    """``requests`` POSTs (one image each) from ``concurrency`` kept-alive connections,
    for at most ``seconds``: statuses, latencies, wall time."""
    statuses, latencies = {}, []
    deadline = time.monotonic() + seconds
    issued = 0

    async def worker():
        nonlocal issued
        connection = Connection(port)
        while issued < requests and time.monotonic() < deadline:
            issued += 1
            body = images[issued % len(images)]
            started = time.perf_counter()
            try:
                status, _ = await connection.post("/v1/caption", body)
            except (OSError, asyncio.IncompleteReadError) as error:
                status = type(error).__name__
                connection.close()
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
        connection.close()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses, latencies, time.perf_counter() - started


def probe_health(port, stop, found):
    """In a process of its own (so that the load's client does not delay it): /healthz
    every 50 ms on one kept connection until ``stop``; milliseconds into ``found``."""
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        started = time.perf_counter()
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        found.append(1000 * (time.perf_counter() - started))
        time.sleep(0.05)


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def load_phase(server, images, requests, seconds):
    import multiprocessing
    spawn = multiprocessing.get_context("spawn")  # this process runs threads (Keras)
    results = {}
    for concurrency in (1, 8, 32, 64):
        before = server.batches()
        if concurrency == 32:
            manager = spawn.Manager()
            stop, health = manager.Event(), manager.list()
            prober = spawn.Process(target=probe_health,
                                             args=(server.port, stop, health))
            prober.start()
        statuses, latencies, wall = asyncio.run(drive(
            server.port, concurrency, requests, seconds, images))
        after = server.batches()
        batches, answered = after[0] - before[0], after[1] - before[1]
        ok = statuses.get(200, 0)
        figure = dict(
            what=f"serve, concurrency {concurrency}: one image per request",
            requests=len(latencies), statuses=statuses,
            requests_per_second=round(len(latencies) / wall, 1),
            images_per_second=round(ok / wall, 1),
            p50_ms=round(1000 * percentile(latencies, 0.50), 1),
            p95_ms=round(1000 * percentile(latencies, 0.95), 1),
            p99_ms=round(1000 * percentile(latencies, 0.99), 1),
            mean_batch=round(answered / batches, 2) if batches else None)
        if concurrency == 32:
            stop.set()
            prober.join()
            health = list(health)
            manager.shutdown()
            figure.update(healthz_probes=len(health),
                          healthz_p50_ms=round(statistics.median(health), 1),
                          healthz_p99_ms=round(percentile(health, 0.99), 1),
                          healthz_max_ms=round(max(health), 1))
        emit(**figure)
        results[concurrency] = figure
    return results


def multipart(parts, boundary="captioner-benchmark"):
    body = b""
    for name, filename, data in parts:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                 f"filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n").encode()
        body += data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def raw(port, head, body, stall=None, abandon=False):
    """A request written by hand: ``stall`` seconds before the rest of the body, or
    ``abandon`` after half of it. Returns the status line's code or what happened."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    half = len(body) // 2
    writer.write(head + body[:half])
    await writer.drain()
    if abandon:
        writer.close()
        return "abandoned"
    if stall:
        await asyncio.sleep(stall)
    writer.write(body[half:])
    await writer.drain()
    line = await reader.readline()
    response = await reader.read(65536)
    writer.close()
    return int(line.split()[1]), response.split(b"\r\n\r\n", 1)[-1]


def faults_phase(server, images, rounds, timeout):
    """Valid and bad requests, interleaved: {kind: {status: count}}, and the checks."""
    import httpx2
    good_body = images[0]
    form, form_type = multipart([("images", "a.png", good_body)])
    head = ("POST /v1/caption HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(good_body)}\r\n\r\n").encode()
    outcomes, one_line = {}, True

    def note(kind, status):
        outcomes.setdefault(kind, {}).setdefault(str(status), 0)
        outcomes[kind][str(status)] += 1

    async def run():
        nonlocal one_line
        async with httpx2.AsyncClient(base_url=server.url, timeout=timeout + 30) as client:
            async def post(kind, content, content_type="image/png", query=""):
                nonlocal one_line
                response = await client.post("/v1/caption" + query, content=content,
                                             headers={"content-type": content_type})
                note(kind, response.status_code)
                if response.status_code != 200:
                    error = response.json().get("error", "")
                    one_line = one_line and bool(error) and "\n" not in error
            for _ in range(rounds):
                await asyncio.gather(
                    post("valid", good_body),
                    post("valid multipart", form, form_type),
                    post("malformed multipart", form[:len(form) // 2], form_type),
                    post("truncated image", good_body[:len(good_body) // 3]),
                    post("not an image", b"GIF89a" + b"\0" * 200),
                    post("unknown option", good_body, query="?beams=3"),
                    post("over the body limit", b"\0" * (2 * 1024 * 1024 + 1)),
                    post("valid", good_body))
            stalled = await asyncio.gather(
                *(raw(server.port, head, good_body, stall=timeout + 1) for _ in range(4)),
                *(raw(server.port, head, good_body, abandon=True) for _ in range(4)))
            for result in stalled:
                if result == "abandoned":
                    note("abandoned upload", "closed by the client")
                else:
                    note("upload stalled past the deadline", result[0])
            for _ in range(rounds):  # the server still answers
                await post("valid after", good_body)
    asyncio.run(run())
    valid = {kind: counts for kind, counts in outcomes.items() if kind.startswith("valid")}
    bad = {kind: counts for kind, counts in outcomes.items() if kind not in valid
           and kind != "abandoned upload"}
    checks = {
        "every valid request 200": all(set(c) == {"200"} for c in valid.values()),
        "every bad request 4xx": all(s.startswith("4") for c in bad.values() for s in c),
        "bad requests' errors one line of JSON": one_line,
        "no 5xx": not any(s.startswith("5") for c in outcomes.values() for s in c)}
    emit(what="serve, faults interleaved with valid requests", outcomes=outcomes, **checks)
    return sum(sum(c.values()) for c in outcomes.values())


def soak_phase(server, images, done, total, seconds):
    """Requests at concurrency 32 until ``total`` have been made; RSS before and after."""
    warm = rss_mb(server.process.pid)
    left = total - done
    statuses, latencies, wall = asyncio.run(drive(server.port, 32, left, seconds, images))
    after = rss_mb(server.process.pid)
    emit(what=f"serve, RSS after warm-up and after {total:,} requests", warm_mb=round(warm, 1),
         after_mb=round(after, 1), growth=round(after / warm - 1, 4), statuses=statuses,
         soak_requests=len(latencies))


def workers_phase():
    server = Server("--workers", "2", ready_count=10)
    time.sleep(2)
    sizes = [rss_mb(pid) for pid in children(server.process.pid)
             if b"spawn_main" in open(f"/proc/{pid}/cmdline", "rb").read()]
    supervisor = rss_mb(server.process.pid)
    server.stop()
    emit(what="serve --workers 2: RSS of each worker (and the supervisor)",
         workers_mb=[round(size, 1) for size in sizes], supervisor_mb=round(supervisor, 1))


def jsonl_phase(work):
    """Peak RSS of caption --jsonl over 1,000 and 10,000 images."""
    names = sorted(os.listdir(SAMPLES))
    peaks = {}
    for count in (1_000, 10_000):
        folder = os.path.join(work, f"images-{count}")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for number in range(count):
            os.link(os.path.join(SAMPLES, names[number % len(names)]),
                    os.path.join(folder, f"{number:06d}.png"))
        out = os.path.join(work, f"answers-{count}.jsonl")
        if os.path.exists(out):
            os.remove(out)
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "captioner", "caption", folder, "--jsonl", out,
             "--batch-size", "32"], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        with open(out) as handle:
            lines = sum(1 for _ in handle)
        peaks[count] = usage.ru_maxrss / 1024
        emit(what=f"caption --jsonl over {count:,} images", peak_rss_mb=round(peaks[count], 1),
             lines=lines, seconds=round(seconds, 1), exit_status=os.waitstatus_to_exitcode(status))
    emit(what="caption --jsonl: peak RSS, 10,000 images against 1,000",
         ratio=round(peaks[10_000] / peaks[1_000], 3))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PHASES),
                        help=f"phases, comma-separated ({', '.join(PHASES)})")
    parser.add_argument("--requests", type=int, default=600,
                        help="most requests per concurrency level (default: 600)")
    parser.add_argument("--seconds", type=float, default=60,
                        help="most seconds per concurrency level (default: 60)")
    parser.add_argument("--total", type=int, default=10_000,
                        help="requests made in all before the soak's RSS (default: 10,000)")
    parser.add_argument("--work", default="/tmp/captioner-serve",
                        help="folder for the jsonl phase's images and answers")
    args = parser.parse_args(argv)
    phases = args.only.split(",")
    images = samples()
    if "api" in phases:
        rate = api_rate()
        emit(what="ImageCaptioner.caption in one process, batch 16", images_per_second=round(
            rate, 1))
    if {"load", "faults", "soak"} & set(phases):
        timeout = 5.0
        server = Server("--max-batch", "32", "--queue", "1024", "--max-body-mb", "2",
                        "--timeout", str(timeout))
        emit(what="serve: start to ready (model loaded, searches compiled)",
             seconds=round(server.start_seconds, 1), rss_mb=round(rss_mb(server.process.pid), 1))
        done = 0
        if "load" in phases:
            figures = load_phase(server, images, args.requests, args.seconds)
            done += sum(figure["requests"] for figure in figures.values())
            emit(what="serve: concurrency 32 against 1, requests/s",
                 ratio=round(figures[32]["requests_per_second"]
                             / figures[1]["requests_per_second"], 2),
                 p99_over_p50_at_8=round(figures[8]["p99_ms"] / figures[8]["p50_ms"], 2))
        if "faults" in phases:
            done += faults_phase(server, images, 20, timeout)
        if "soak" in phases:
            soak_phase(server, images, done, args.total, 600)
        status = server.stop()
        emit(what="serve: exit status after SIGTERM", exit_status=status)
    if "workers" in phases:
        workers_phase()
    if "jsonl" in phases:
        os.makedirs(args.work, exist_ok=True)
        jsonl_phase(args.work)


if __name__ == "__main__":
    main()
