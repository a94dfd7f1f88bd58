"""Running the app: uvicorn, in one process or ``workers`` processes sharing one socket.

Signals: the first SIGTERM or SIGINT stops accepting connections, ``/readyz`` turns 503,
and what was accepted is answered within ``grace`` seconds; then the process exits 0
(SIGTERM) or 130 (SIGINT). A second signal exits at once (128 + its number). uvicorn's
own server raises the signal again after a graceful stop, which would make a clean
SIGTERM exit 143; this one does not.
"""

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading

import uvicorn
from uvicorn.supervisors import Multiprocess

from captioner.errors import ServerError

ENVIRONMENT = "CAPTIONER_SERVE"  # what a worker process loads: JSON of serve()'s arguments
SIGNALS = (signal.SIGINT, signal.SIGTERM)
log = logging.getLogger("captioner.serve")


class Server(uvicorn.Server):
    """uvicorn's server with the signals of the module docstring: at the first, the
    process's apps say they are stopping (/readyz 503)."""

    signal = None

    def handle_exit(self, sig, frame):
        from captioner.serve.app import stopping
        if self.should_exit:  # the second signal: no more waiting
            os._exit(128 + sig)
        self.signal, self.should_exit = sig, True
        stopping()
        log.info("%s: no new connections; answering what was accepted (at most %g s)",
                 signal.Signals(sig).name, self.config.timeout_graceful_shutdown)

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


class Supervisor(Multiprocess):
    """uvicorn's supervisor of worker processes, remembering the signal that stopped it.
    Its workers run uvicorn's own server, which ``app_from_environment`` tells the app
    about the first signal."""

    signal = None

    def handle_int(self):
        self.signal = self.signal or signal.SIGINT
        super().handle_int()

    def handle_term(self):
        self.signal = self.signal or signal.SIGTERM
        super().handle_term()


def check_model(folder):
    """ModelError in one line unless ``folder`` is a captioner's model folder (read
    without Keras, so that a supervisor of workers never imports it)."""
    from captioner import io
    from captioner.errors import DataError, ModelError
    for name in ("model.keras", "config.json", "vocab.json"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise ModelError(f"Not a model folder: {folder} has no {name}"
                             if os.path.isdir(folder) else f"Model folder not found: {folder}")
    try:
        kind = io.read_json(os.path.join(folder, "config.json"), "model config").get("kind")
    except (DataError, AttributeError) as error:
        raise ModelError(f"{folder}/config.json is not a model config: {error}") from None
    if kind != "captioner":
        raise ModelError(f"{folder} holds a {kind} model; captioner serve serves captioners")


def listen(host, port):
    """A bound socket on (host, port); ServerError in one line where it cannot be."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        raise ServerError(f"cannot listen on {host}:{port}: {error.strerror or error}") \
            from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app, config, **options):
    return uvicorn.Config(app, host=config.host, port=config.port, log_level="info",
                          access_log=config.access_log, lifespan="on",
                          timeout_graceful_shutdown=config.grace, proxy_headers=False,
                          server_header=False, **options)


def serve(model, config, search=None):
    """Serves the model folder ``model`` (a list of folders: their ensemble) as ``config``
    (a ``ServeConfig``) says, with the default ``search`` (a ``SearchConfig``); returns the
    exit status when it stops."""
    _logging()
    models = [model] if isinstance(model, (str, os.PathLike)) else list(model)
    model = " + ".join(map(str, models))
    if config.workers == 1:
        from captioner.serve.app import create_app
        app = create_app(_load(models), config, search)
        sock = listen(config.host, config.port)
        server = Server(_uvicorn_config(app, config))
        log.info("serving %s on http://%s:%d (compiling its searches; /readyz says when "
                 "ready)", model, config.host, config.port)
        server.run(sockets=[sock])
        return 130 if server.signal == signal.SIGINT else 0
    os.environ[ENVIRONMENT] = json.dumps({"models": [os.path.abspath(m) for m in models],
                                          "config": config.to_dict(),
                                          "search": search.to_dict() if search else None})
    uvicorn_config = _uvicorn_config(f"{__name__}:app_from_environment", config,
                                     factory=True, workers=config.workers)
    sock = listen(config.host, config.port)
    log.info("serving %s on http://%s:%d with %d workers", model, config.host, config.port,
             config.workers)
    supervisor = Supervisor(uvicorn_config, sockets=[sock])
    supervisor.run()
    return 130 if supervisor.signal == signal.SIGINT else 0


def app_from_environment():
    """A worker's app (``--workers N``): the model and settings its supervisor put in
    the environment."""
    from captioner.config import SearchConfig, ServeConfig
    from captioner.serve.app import create_app
    _logging()
    from captioner.serve.app import stopping
    settings = json.loads(os.environ[ENVIRONMENT])
    search = SearchConfig.from_dict(settings["search"]) if settings["search"] else None
    app = create_app(_load(settings["models"]),
                     ServeConfig.from_dict(settings["config"]), search)
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:  # uvicorn's handlers are in place: /readyz turns 503 first
            previous = signal.getsignal(sig)
            if callable(previous):
                signal.signal(sig, lambda number, frame, previous=previous: (
                    stopping(), previous(number, frame)))
    return app


def _load(models):
    """The captioner of one model folder, or the ensemble of several."""
    from captioner.tasks import ImageCaptioner, load
    return ImageCaptioner.from_folder(models[0]) if len(models) == 1 else load(models)


def _logging():
    logger = logging.getLogger("captioner")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
