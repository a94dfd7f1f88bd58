"""The server's app in process (Starlette's test client, the bundled model): every
endpoint, every error status with its one line, answers equal to ``ImageCaptioner.caption``
image for image, and the limits: body, images, pixels, options, deadline, queue, a client
that leaves."""

import asyncio
import base64
import io
import json
import logging
import os
import threading

import numpy as np
import pytest
from PIL import Image

from captioner.config import SearchConfig, ServeConfig
from tests.conftest import ROOT

starlette_testclient = pytest.importorskip("starlette.testclient")
SAMPLES = os.path.join(ROOT, "assets", "samples")
SAMPLE_FILES = sorted(os.path.join(SAMPLES, name) for name in os.listdir(SAMPLES))
CONFIG = ServeConfig(max_batch=4, max_images=4, queue=8, max_beam=3, max_body_mb=1.0,
                     max_pixels=1_000_000)


@pytest.fixture(scope="module")
def task():
    from captioner.tasks import ImageCaptioner
    return ImageCaptioner.from_folder(os.path.join(ROOT, "assets", "model"))


@pytest.fixture(scope="module")
def client(task):
    from captioner.serve import create_app
    with starlette_testclient.TestClient(create_app(task, CONFIG)) as client:
        for _ in range(600):
            if client.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.05)
        yield client


def png_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def parts(*paths):
    return [("images", (os.path.basename(p), png_bytes(p), "image/png")) for p in paths]


@pytest.mark.backend
def test_answers_are_the_clis_json_image_for_image(client, task):
    response = client.post("/v1/caption", files=parts(*SAMPLE_FILES[:3]))
    assert response.status_code == 200 and response.headers["x-request-id"]
    expected = [answer.to_json() for answer in task.caption(SAMPLE_FILES[:3])]
    for entry, wanted in zip(response.json(), expected):
        assert entry == {**wanted, "path": os.path.basename(wanted["path"])}


def test_a_raw_image_body_and_beam_options_give_the_n_best_of_the_api(client, task):
    search = SearchConfig(beam=3, n_best=3)
    response = client.post("/v1/caption?beam=3&n_best=3", content=png_bytes(SAMPLE_FILES[0]),
                           headers={"content-type": "image/png"})
    assert response.status_code == 200
    (entry,) = response.json()
    wanted = task.caption(SAMPLE_FILES[:1], search)[0].to_json(n_best=True)
    assert entry == {**wanted, "path": None}
    assert len(entry["n_best"]) == 3


def test_samples_with_a_seed_and_a_ban_are_the_apis_in_any_batch(client, task):
    search = SearchConfig(samples=3, top_p=0.9, temperature=1.5, seed=7, ban=("dark",))
    response = client.post("/v1/caption?samples=3&top_p=0.9&temperature=1.5&seed=7&ban=dark",
                           files=parts(*SAMPLE_FILES[:2]))
    assert response.status_code == 200, response.text
    expected = [answer.to_json(n_best=True) for answer in task.caption(SAMPLE_FILES[1::-1],
                                                                       search)][::-1]
    for entry, wanted in zip(response.json(), expected):  # another batch order, same samples
        assert entry == {**wanted, "path": os.path.basename(wanted["path"])}
        assert len(entry["n_best"]) == 3
        assert all("dark" not in c["caption"].split() for c in entry["n_best"])


@pytest.mark.backend
def test_maps_are_each_words_attention_as_the_search_gave_it(client, task):
    response = client.post("/v1/caption", files=parts(SAMPLE_FILES[1]),
                           data={"maps": "true"})
    (entry,) = response.json()
    best = task.caption(SAMPLE_FILES[1:2])[0].best
    assert entry["grid"] == list(task.grid_shape)
    maps = np.array([word["map"] for word in entry["words"]])  # (n_words, H, W)
    assert maps.shape == (len(best.words),) + tuple(task.grid_shape)
    np.testing.assert_allclose(maps, best.alphas, atol=6e-5)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-2)


def test_heatmaps_are_png_figures_of_the_image(client):
    response = client.post("/v1/caption?heatmaps=1", files=parts(SAMPLE_FILES[2]))
    (entry,) = response.json()
    figure = Image.open(io.BytesIO(base64.b64decode(entry["attention_png_base64"])))
    assert figure.format == "PNG" and figure.width > 300


def test_an_unreadable_image_is_an_error_entry_beside_the_good_ones(client):
    files = parts(SAMPLE_FILES[0]) + [("images", ("notes.png", b"not an image", "image/png"))]
    response = client.post("/v1/caption", files=files)
    assert response.status_code == 200
    good, bad = response.json()
    assert good["caption"] and bad == {
        "path": "notes.png", "error": "Not an image (or a format Pillow cannot read): notes.png"}


@pytest.mark.parametrize("body, status, said", [
    (b"GIF89a not really", 415, "Not an image"),
    (png_bytes(SAMPLE_FILES[0])[:300], 422, "Cannot decode image"),
    ("large", 422, "Image too large"),
    (b"", 422, "no image in the request"),
])
def test_images_that_cannot_be_read_are_refused_with_the_clis_reason(client, body, status,
                                                                     said):
    if body == "large":  # 1200 x 1000 pixels: over this server's 1,000,000
        buffer = io.BytesIO()
        Image.new("RGB", (1200, 1000), (9, 9, 9)).save(buffer, format="PNG")
        body = buffer.getvalue()
    response = client.post("/v1/caption", content=body,
                           headers={"content-type": "application/octet-stream"})
    assert response.status_code == status
    assert said in response.json()["error"] and "\n" not in response.json()["error"]


@pytest.mark.parametrize("query, said", [
    ("bogus=1", "unknown option 'bogus'"),
    ("beam=two", "option beam must be int"),
    ("beam=4", "option beam must be at most 3"),
    ("samples=4", "option samples must be at most 3"),
    ("samples=2&beam=2", "do not mix"),
    ("ban=zebrra,red", "'zebrra' not in the model's vocabulary"),
    ("beam=2&n_best=3", "n_best"),
    ("length_penalty=nan", "option length_penalty must be a finite number"),
    ("max_length=500", "option max_length must be at most the model's"),
    ("maps=maybe", "option maps must be true or false"),
    ("beam=1&beam=2", "option beam is given twice"),
    ("grounded=1", "option grounded needs a model with a grounding head"),
])
def test_bad_options_are_422_naming_the_option(client, query, said):
    response = client.post(f"/v1/caption?{query}", files=parts(SAMPLE_FILES[0]))
    assert response.status_code == 422, response.text
    assert said in response.json()["error"]


def test_bodies_and_image_counts_over_the_limits_are_413(client):
    big = b"\0" * (CONFIG_BODY + 10)
    assert client.post("/v1/caption", content=big).status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"\0" * 65536
    response = client.post("/v1/caption", content=chunks())
    assert response.status_code == 413 and "limit" in response.json()["error"]
    response = client.post("/v1/caption", files=parts(*[SAMPLE_FILES[0]] * 5))
    assert response.status_code == 413 and "more than 4 images" in response.json()["error"]


CONFIG_BODY = int(CONFIG.max_body_mb * 1024 * 1024)


def test_other_bodies_routes_and_methods_are_json_errors(client):
    response = client.post("/v1/caption", json={"image": "x"})
    assert response.status_code == 415 and "multipart" in response.json()["error"]
    response = client.post("/v1/caption", content=b"--x\r\nbroken",
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code in (400, 422) and response.json()["error"]
    assert client.get("/nowhere").json() == {"error": "no such endpoint: /nowhere "
                                                      "(the API: /docs)"}
    response = client.get("/v1/caption")
    assert response.status_code == 405 and response.json()["error"].startswith("GET")


def test_health_model_metrics_api_and_page(client, task):
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {"status": "ready"}
    model = client.get("/v1/model").json()
    assert model["vocabulary_size"] == len(task.vocabulary)
    assert model["grid"] == list(task.grid_shape) and model["decoder"]["kind"] == "lstm"
    assert "synthetic" in model["intended_use"] and model["limitations"].startswith("-")
    assert model["limits"]["max_beam"] == 3
    client.post("/v1/caption", files=parts(SAMPLE_FILES[0]))
    text = client.get("/metrics").text
    assert 'captioner_requests_total{route="/v1/caption",status="200"}' in text
    for name in ("captioner_request_seconds_bucket", "captioner_batch_size_bucket",
                 "captioner_queue_depth", "captioner_images_per_second", "captioner_ready 1.0"):
        assert name in text
    api = client.get("/openapi.json").json()
    names = {p["name"] for p in api["paths"]["/v1/caption"]["post"]["parameters"]}
    assert {"beam", "n_best", "grounded", "maps", "heatmaps"} <= names
    assert "/v1/caption" in client.get("/docs").text
    page = client.get("/")
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert "captionerViewer" in page.text and "v1/caption" in page.text


def test_a_failure_inside_is_a_500_with_an_id_the_log_names(task, caplog):
    from captioner.serve import create_app

    class Broken(type(task)):  # a decoding that fails, as a bug would
        def answer_batch(self, *args, **kwargs):
            raise RuntimeError("a bug")
    broken = Broken(task.model, task.vocabulary, task.domain, task.config, task.folder)
    with starlette_testclient.TestClient(create_app(broken, CONFIG, warm=False)) as client, \
            caplog.at_level(logging.ERROR, "captioner.serve"):
        response = client.post("/v1/caption", files=parts(SAMPLE_FILES[0]))
    assert response.status_code == 500
    body = response.json()
    assert "Traceback" not in response.text and body["id"] in body["error"]
    assert any(body["id"] in record.getMessage() for record in caplog.records)


# --- the batcher: batches, queue, deadlines and clients that leave -------------------------
def model_inputs(task, count):
    from captioner.data.images import load_with_input
    size = task.model.model_config.encoder.image_size
    return [(path, *load_with_input(path, size)) for path in SAMPLE_FILES[:count]]


class Gate:
    """A captioner whose decoding waits, while ``held``, until the gate opens: the model
    busy with a batch, as under load. Opens by itself after 30 s, so that no test can
    hang on it."""

    def __init__(self, task):
        opened = self.opened = threading.Event()
        self.opened.set()

        class Gated(type(task)):
            def answer_batch(self, *args, **kwargs):
                opened.wait(30)
                return super().answer_batch(*args, **kwargs)
        self.task = Gated(task.model, task.vocabulary, task.domain, task.config, task.folder)
        self.task._searches = task._searches  # the same model: share its compiled searches

    def hold(self):
        self.opened.clear()

    def open(self):
        self.opened.set()


async def busy(batcher, gate, item, search):
    """Starts a batch of one that holds the model until ``gate`` opens; returns its
    future once the batch has been taken from the queue."""
    gate.hold()
    first = asyncio.ensure_future(batcher.caption([item], search))
    await asyncio.sleep(0.05)
    assert batcher.depth == 0
    return first


@pytest.fixture(scope="module")
def gate(task):
    gate = Gate(task)
    yield gate
    gate.open()


@pytest.mark.backend
def test_requests_that_wait_together_are_decoded_as_one_batch(task, gate):
    from captioner.serve.batcher import Batcher
    items = model_inputs(task, 5)
    search = task.search_config(SearchConfig())

    async def run():
        sizes = []
        batcher = Batcher(gate.task, max_batch=4, queue=8, on_batch=sizes.append)
        batcher.start()
        try:
            first = await busy(batcher, gate, items[0], search)
            waiting = [asyncio.ensure_future(batcher.caption([item], search))
                       for item in items[1:]]
            await asyncio.sleep(0.02)
            depth = batcher.depth
            gate.open()
            answers = await asyncio.gather(first, *waiting)
        finally:
            gate.open()
            await batcher.stop()
        return sizes, depth, answers
    sizes, depth, answers = asyncio.run(run())
    assert depth == 4 and sizes == [1, 4]
    expected = task.caption([path for path, _, _ in items])
    assert [a[0].to_json() for a in answers] == [e.to_json() for e in expected]


def test_a_full_queue_refuses_and_a_request_that_gives_up_takes_its_images_back(task, gate):
    from captioner.serve.batcher import Batcher, QueueFull
    items = model_inputs(task, 4)
    search = task.search_config(SearchConfig())

    async def run():
        batcher = Batcher(gate.task, max_batch=4, queue=2)
        batcher.start()
        try:
            first = await busy(batcher, gate, items[0], search)
            second = asyncio.ensure_future(batcher.caption(items[1:3], search))
            await asyncio.sleep(0.02)
            with pytest.raises(QueueFull) as full:
                await batcher.caption(items[3:], search)
            second.cancel()  # its client left: its two images leave the queue
            with pytest.raises(asyncio.CancelledError):
                await second
            depth = batcher.depth
            later = asyncio.ensure_future(batcher.caption(items[3:], search))
            gate.open()
            answers = await asyncio.gather(first, later)
        finally:
            gate.open()
            await batcher.stop()
        return full.value.retry_after, depth, answers
    retry_after, depth, answers = asyncio.run(run())
    assert retry_after >= 1 and depth == 0 and all(a[0].caption for a in answers)


def test_different_searches_are_never_mixed_in_a_batch(task, gate):
    from captioner.serve.batcher import Batcher
    items = model_inputs(task, 3)
    greedy = task.search_config(SearchConfig())
    beam = task.search_config(SearchConfig(beam=2, n_best=2))

    async def run():
        sizes = []
        batcher = Batcher(gate.task, max_batch=4, queue=8, on_batch=sizes.append)
        batcher.start()
        try:
            first = await busy(batcher, gate, items[0], greedy)
            one = asyncio.ensure_future(batcher.caption(items[1:2], greedy))
            two = asyncio.ensure_future(batcher.caption(items[2:], beam))
            await asyncio.sleep(0.02)
            gate.open()
            answers = await asyncio.gather(first, one, two)
        finally:
            gate.open()
            await batcher.stop()
        return sizes, answers
    sizes, (_, one, two) = asyncio.run(run())
    assert sizes == [1, 1, 1] and len(one[0].n_best) == 1 and len(two[0].n_best) == 2


def asgi_request(app, body, disconnect=False):
    """One POST /v1/caption through the app's ASGI interface: (its coroutine function,
    the messages it sent); with ``disconnect`` the client leaves right after sending the
    body."""
    sent = []

    async def run():
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            if disconnect:
                await asyncio.sleep(0.05)
                return {"type": "http.disconnect"}
            await asyncio.Event().wait()

        async def send(message):
            sent.append(message)
        scope = {"type": "http", "method": "POST", "path": "/v1/caption", "query_string": b"",
                 "headers": [(b"content-type", b"image/png")], "root_path": "",
                 "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 9),
                 "http_version": "1.1", "asgi": {"version": "3.0"}}
        await app(scope, receive, send)
    return run, sent


def test_a_client_that_leaves_gives_back_its_place_and_a_deadline_is_504(task, gate):
    from captioner.serve import create_app
    app = create_app(gate.task, ServeConfig(max_batch=4, max_images=4, queue=8, timeout=0.3),
                     warm=False)
    service = app.state.service
    body = png_bytes(SAMPLE_FILES[0])
    item = model_inputs(task, 1)[0]

    async def run():
        await service.start()
        try:
            first = await busy(service.batcher, gate, item, service.search)
            leaving, _ = asgi_request(app, body, disconnect=True)
            await leaving()
            depth_after_leaving = service.batcher.depth
            late, sent = asgi_request(app, body)
            await late()
            depth_after_deadline = service.batcher.depth
            gate.open()
            await first
        finally:
            gate.open()
            await service.stop()
        return depth_after_leaving, depth_after_deadline, sent
    left, timed_out, sent = asyncio.run(run())
    assert left == 0 and timed_out == 0
    assert sent[0]["status"] == 504
    assert "not answered within 0.3 s" in json.loads(sent[1]["body"])["error"]
    text = service.metrics.text()[0].decode()
    assert 'status="499"' in text and 'status="504"' in text


def test_requests_past_the_uploads_being_received_wait_their_turn_until_the_deadline(task):
    from captioner.serve import create_app
    app = create_app(task, ServeConfig(max_uploads=1, max_images=4, queue=8, timeout=0.2),
                     warm=False)
    service = app.state.service
    body = png_bytes(SAMPLE_FILES[0])

    async def run():
        await service.start()
        await service.uploads.acquire()  # one upload being received, and received slowly
        waiting, refused = asgi_request(app, body)
        await waiting()
        service.uploads.release()
        served, answered = asgi_request(app, body)
        await served()
        await service.stop()
        return refused, answered
    refused, answered = asyncio.run(run())
    assert refused[0]["status"] == 503 and (b"retry-after", b"1") in refused[0]["headers"]
    assert "were being received for all of 0.2 s (--max-uploads)" in json.loads(
        refused[1]["body"])["error"]
    assert answered[0]["status"] == 200


@pytest.mark.slow  # a second app, its search compiled
def test_an_ensemble_is_served_as_the_api_captions_with_it(task):
    """``captioner serve --model A --model B``: the app of the members' ensemble answers as
    ``ImageCaptioner.caption`` of that ensemble, and /v1/model names its members."""
    from captioner.serve import create_app
    from captioner.tasks import ImageCaptioner
    both = ImageCaptioner.ensemble([task, task])
    with starlette_testclient.TestClient(create_app(both, CONFIG)) as client:
        for _ in range(600):
            if client.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.05)
        response = client.post("/v1/caption?beam=2", files=parts(*SAMPLE_FILES[:2]))
        assert response.status_code == 200, response.text
        expected = [a.to_json() for a in both.caption(SAMPLE_FILES[:2], SearchConfig(beam=2))]
        assert [entry["caption"] for entry in response.json()] == \
            [wanted["caption"] for wanted in expected]
        model = client.get("/v1/model").json()
        assert model["members"] == [task.folder, task.folder]
