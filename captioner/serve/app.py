"""The HTTP app (Starlette): routes, the caption endpoint, errors and metrics.

    POST /v1/caption    images (multipart parts, or one image as the body) -> the CLI's
                        ``--json`` list (``ImageCaptions.to_json``), one entry per image
    GET  /v1/model      what the model is (its card's intended use and limitations too)
    GET  /healthz       alive (answered while the model is busy)
    GET  /readyz        200 once the searches are compiled; 503 before, and when stopping
    GET  /metrics       Prometheus text (``captioner.serve.metrics``)
    GET  /openapi.json  the API, described; GET /docs the same as a page
    GET  /              a page to caption images and point at their words

Every error is JSON, ``{"error": "one line"}``, with the status that says why (a 500
carries an ``id`` that the server's log line carries too); no traceback ever leaves
the server. The app keeps no state between requests, so replicas scale out.
"""

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import logging
import os
import time
import uuid
import weakref

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from captioner.config import SearchConfig, ServeConfig
from captioner.errors import ImageError
from captioner.serve import page, schema
from captioner.serve.batcher import Batcher, QueueFull
from captioner.serve.metrics import Metrics
from captioner.serve.uploads import (
    Refused,
    decode_uploads,
    read_body,
    read_options,
    read_uploads,
    status_of,
)
from captioner.version import __version__

log = logging.getLogger("captioner.serve")
ROUTES = ("/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/v1/model",
          "/v1/caption")
CLIENT_GONE = 499  # the status logged and counted for a request whose client left
SERVICES = weakref.WeakSet()  # this process's services, told when a signal stops it


def stopping():
    """Every service of this process stops taking requests (/readyz 503); the server
    calls it at the first signal, before it waits for the accepted ones."""
    for service in list(SERVICES):
        service.stopping = True


class Service:
    """What the app serves from: the task, its batcher, the image-decoding threads, the
    metrics, and whether it is ready (searches compiled) or stopping.

    Args:
        task: an ``ImageCaptioner``.
        config: a ``ServeConfig``.
        search: the ``SearchConfig`` a request gets where it gives no options.
        warm: compile the default search for every batch shape before ready.
    """

    def __init__(self, task, config=None, search=None, warm=True):
        self.task, self.config = task, config or ServeConfig()
        self.search = task.search_config(search or SearchConfig())
        self.warm, self.ready, self.stopping = warm, False, False
        self.batcher = Batcher(task, self.config.max_batch, self.config.max_wait_ms,
                               self.config.queue, self.config.searches,
                               on_batch=lambda size: self.metrics.batch_size.observe(size))
        self.metrics = Metrics(lambda: self.batcher.depth, self.batcher.images_per_second,
                               lambda: self.ready and not self.stopping)
        self.images = concurrent.futures.ThreadPoolExecutor(
            max(2, min(8, os.cpu_count() or 2)), "captioner-images")
        self.image_size = task.model.model_config.encoder.image_size
        self.uploads = asyncio.Semaphore(self.config.max_uploads)  # requests being received
        self._warming = None
        self.answered = collections.Counter()  # route -> requests answered (the log's)
        SERVICES.add(self)

    async def start(self):
        self.batcher.start()
        if not self.warm:
            self.ready = True
            return
        loop = asyncio.get_running_loop()
        self._warming = loop.run_in_executor(None, self._warm)

    def _warm(self):
        started = time.perf_counter()
        self.batcher.warm(self.search)
        self.ready = True
        log.info("ready: %s search compiled for batches up to %d in %.1f s",
                 self.search.name, self.config.max_batch, time.perf_counter() - started)

    async def stop(self):
        self.stopping = True
        if self._warming is not None:
            with contextlib.suppress(Exception):
                await self._warming
        await self.batcher.stop()
        self.images.shutdown(wait=False, cancel_futures=True)
        log.info("stopped; requests answered: %s", ", ".join(
            f"{route} {count}" for route, count in sorted(self.answered.items())) or "none")

    def model_info(self):
        """GET /v1/model's answer."""
        from captioner.saving import read_card
        from captioner.search.grounded import can_ground
        model = self.task.model.model_config
        decoder = model.decoder
        config = self.config
        return {
            "kind": self.task.kind, "captioner_version": __version__,
            "trained_on": self.task.trained_on, "vocabulary_size": len(self.task.vocabulary),
            "decoder": {"kind": decoder.kind,
                        **({"attention": decoder.attention, "score": decoder.score}
                           if decoder.kind == "lstm" else
                           {"layers": decoder.layers, "heads": decoder.heads})},
            "encoder": {"backbone": model.encoder.backbone,
                        "image_size": model.encoder.image_size},
            "grid": list(self.task.grid_shape), "max_length": model.max_length,
            "grounding_head": can_ground(self.task.model),
            **({"members": [member.folder for member in self.task.members]}
               if self.task.is_ensemble else {}),
            "out_of_domain_check": self.task.domain is not None,
            "search": self.search.to_dict(),
            "limits": {"max_images": config.max_images, "max_body_bytes": self.body_limit,
                       "max_pixels": config.max_pixels, "max_beam": config.max_beam,
                       "timeout_seconds": config.timeout, "max_batch": config.max_batch},
            **page.card_sections(read_card(self.task.folder)),
        }

    @property
    def body_limit(self):
        return int(self.config.max_body_mb * 1024 * 1024)


# --- the caption endpoint ---------------------------------------------------------------
async def caption(request):
    service = request.app.state.service
    if not service.ready or service.stopping:
        why = "stopping" if service.stopping else "still compiling its searches"
        raise Refused(503, f"the server is {why}; retry shortly", {"Retry-After": "2"})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + service.config.timeout
    uploads, items, search, flags = await _received(request, service, deadline)
    good = [item for item in items if not isinstance(item, ImageError)]
    entries = [{"path": upload.name, "error": str(item)} for upload, item in
               zip(uploads, items) if isinstance(item, ImageError)]
    if not good:
        first = next(item for item in items if isinstance(item, ImageError))
        message = str(first) if len(items) == 1 else \
            f"none of the {len(items)} images could be read; the first: {first}"
        raise Refused(status_of(first), message, results=entries)
    answers = await _answered(request, service, good, search, deadline - loop.time())
    if answers is None:
        return Response(status_code=CLIENT_GONE)
    results = iter(await _results(service, answers, search, flags))
    errors = iter(entries)
    return JSONResponse([next(errors) if isinstance(item, ImageError) else next(results)
                         for item in items])


async def _received(request, service, deadline):
    """(uploads, per upload its item or the ImageError that says why not, the complete
    search, the flags) of a caption request. It waits its turn among ``--max-uploads``
    requests being received (its body unread meanwhile, so held nowhere), then is read
    and decoded within its deadline."""
    config = service.config
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(config.timeout):
            await service.uploads.acquire()
    except TimeoutError:
        raise Refused(503, f"{config.max_uploads} requests were being received for all of "
                           f"{config.timeout:g} s (--max-uploads); retry shortly",
                      {"Retry-After": "1"}) from None
    try:
        with service.batcher.arriving_request():
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.0)):
                    body = await read_body(request, service.body_limit)
            except TimeoutError:
                raise Refused(408, "the request body did not arrive within "
                                   f"{config.timeout:g} s (--timeout)") from None
            uploads, fields = await read_uploads(request, body, service.body_limit,
                                                 config.max_images)
            del body
            if len(uploads) > config.max_images:
                raise Refused(413, f"more than {config.max_images} images in one request "
                                   "(--max-images)")
            search, flags = read_options(dict(_once(request.query_params.multi_items())),
                                         fields, service.search, config.max_beam,
                                         service.task.model.model_config.max_length,
                                         service.task.vocabulary)
            from captioner.search.grounded import can_ground
            if search.grounded and not can_ground(service.task.model):
                raise Refused(422, "option grounded needs a model with a grounding head; "
                                   "this one has none")
            search = service.task.search_config(search)
            items = await decode_uploads(uploads, service.images, service.image_size,
                                         config.max_pixels, keep_images=flags["heatmaps"])
            return uploads, items, search, flags
    finally:
        service.uploads.release()


def _once(pairs):
    seen = set()
    for name, value in pairs:
        if name in seen:
            raise Refused(422, f"option {name} is given twice")
        seen.add(name)
        yield name, value


async def _answered(request, service, items, search, remaining):
    """The batcher's answers for ``items``; None where the client left first (its waiting
    images are taken back); 504 past the deadline; 503 where the queue is full."""
    waiter = asyncio.ensure_future(service.batcher.caption(items, search))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({waiter, gone}, timeout=max(remaining, 0.0),
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if waiter in done:
        try:
            return waiter.result()
        except QueueFull as full:
            raise Refused(503, str(full), {"Retry-After": str(full.retry_after)}) from None
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError, QueueFull):
        await waiter
    if gone in done:
        return None
    raise Refused(504, f"not answered within {service.config.timeout:g} s (--timeout); the "
                       "server is busy")


async def _disconnected(request):
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _results(service, answers, search, flags):
    """The CLI's JSON object per answer, with each word's map as numbers (``maps``) and
    each caption's heat-map figure as base64 PNG (``heatmaps``, drawn on the image
    threads)."""
    grid = list(service.task.grid_shape)
    n_best = search.captions > 1
    results = []
    for answer in answers:
        result = answer.to_json(n_best=n_best)
        entries = result["n_best"] if n_best else [result]
        captions = answer.n_best if n_best else answer.n_best[:1]
        if flags["maps"]:
            result["grid"] = grid
            for entry, found in zip(entries, captions):
                for word, alpha in zip(entry["words"], found.alphas):
                    word["map"] = np.round(np.asarray(alpha, np.float64), 4).tolist()
            if n_best:  # the best caption's words are the first entry's
                result["words"] = result["n_best"][0]["words"]
        if flags["heatmaps"]:
            loop = asyncio.get_running_loop()
            pngs = await asyncio.gather(*(loop.run_in_executor(
                service.images, _heatmap, answer, found) for found in captions))
            for entry, png in zip(entries, pngs):
                entry["attention_png_base64"] = png
            if n_best:
                result["attention_png_base64"] = pngs[0]
        results.append(result)
    return results


def _heatmap(answer, found):
    from captioner.render import attention_png
    return base64.b64encode(attention_png(answer.image, found.words, found.alphas,
                                          found.probabilities, found.cells)).decode("ascii")


# --- the other endpoints ----------------------------------------------------------------
async def healthz(request):
    return JSONResponse({"status": "alive"})


async def readyz(request):
    service = request.app.state.service
    if service.stopping:
        return JSONResponse({"status": "stopping"}, 503)
    if not service.ready:
        return JSONResponse({"status": "compiling"}, 503, {"Retry-After": "2"})
    return JSONResponse({"status": "ready"})


async def model(request):
    return JSONResponse(request.app.state.service.model_info())


async def metrics(request):
    text, kind = request.app.state.service.metrics.text()
    return Response(text, media_type=kind)


async def openapi(request):
    return JSONResponse(schema.openapi(request.app.state.service))


async def docs(request):
    return HTMLResponse(schema.docs_page(schema.openapi(request.app.state.service)))


async def home(request):
    return HTMLResponse(request.app.state.page, headers={"Content-Security-Policy": page.POLICY})


# --- errors, request ids and metrics -----------------------------------------------------
class Guard:
    """The ASGI middleware every request passes: gives it an id (``X-Request-Id``), turns
    ``Refused`` into its JSON error and anything unforeseen into a 500 that names the id
    in the response and in the log (with the traceback there only), and counts it."""

    def __init__(self, app, service):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started, status = time.perf_counter(), [None]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = list(message.get("headers", [])) + [
                    (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Refused as refused:
            if status[0] is None:
                await _send_error(sending, refused.status, refused.message, refused.headers,
                                  refused.results)
        except Exception:
            log.exception("request %s (%s %s) failed", request_id, scope.get("method"),
                          scope.get("path"))
            if status[0] is None:
                await _send_error(sending, 500, "internal error; the server's log names this "
                                                f"request {request_id}", id=request_id)
        finally:
            path = scope.get("path", "")
            route = path if path in ROUTES else "other"
            self.service.metrics.answered(route, status[0] or CLIENT_GONE,
                                          time.perf_counter() - started)
            self.service.answered[route] += 1


async def _send_error(send, status, message, headers=None, results=None, id=None):
    body = {"error": message}
    if id is not None:
        body["id"] = id
    if results:
        body["results"] = results
    response = JSONResponse(body, status, headers)
    await response({"type": "http"}, None, send)


async def http_error(request, error):
    headers = getattr(error, "headers", None)
    messages = {404: f"no such endpoint: {request.url.path} (the API: /docs)",
                405: f"{request.method} is not allowed on {request.url.path}"}
    return JSONResponse({"error": messages.get(error.status_code, str(error.detail))},
                        error.status_code, headers)


def create_app(task, config=None, search=None, warm=True):
    """The Starlette app serving ``task`` (an ``ImageCaptioner``): see the module
    docstring. ``search``: the default ``SearchConfig``; ``warm``: compile before
    ready."""
    service = Service(task, config, search, warm)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(
        routes=[Route("/", home), Route("/healthz", healthz), Route("/readyz", readyz),
                Route("/metrics", metrics), Route("/openapi.json", openapi),
                Route("/docs", docs), Route("/v1/model", model),
                Route("/v1/caption", caption, methods=["POST"])],
        middleware=[Middleware(Guard, service=service)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan)
    app.state.service = service
    app.state.page = page.html()
    return app
