"""How ``captioner serve`` serves a model: ``ServeConfig``."""

import dataclasses

from captioner.config.base import Config, check_positive, check_range, option
from captioner.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ServeConfig(Config):
    """The server's address, batching, limits and shutdown (``captioner.serve``). Each limit
    is what one request or the whole queue may take; past it a request is answered at once
    with the status the field names, never left waiting."""
    title = "server"
    host: str = option("127.0.0.1", "address to listen on (0.0.0.0: every interface; put a "
                       "proxy with TLS in front of anything not on this machine)")
    port: int = option(8000, "port to listen on", metavar="PORT")
    workers: int = option(1, "processes, each with its own copy of the model (they share the "
                          "port); replicas behind a load balancer scale further", metavar="N")
    max_batch: int = option(16, "most images decoded together: requests that arrive while the "
                            "model is busy are decoded as one batch", metavar="N")
    max_wait_ms: float = option(
        2.0, "how long a batch waits for requests still being read before it is decoded "
             "(only while some are: a lone request never waits)", metavar="MS")
    queue: int = option(256, "most images waiting to be decoded; past it a request is "
                        "answered 503 with Retry-After", metavar="N")
    max_uploads: int = option(32, "most requests being received and decoded at once; the "
                              "others wait their turn unread (uploads held in memory are at "
                              "most this x --max-body-mb), and one still waiting at its "
                              "deadline is answered 503 with Retry-After", metavar="N")
    timeout: float = option(30.0, "seconds a request may take from arrival to answer; past "
                            "it, 504 (images not yet decoded give back their place)",
                            metavar="S")
    max_body_mb: float = option(20.0, "largest request body; past it, 413", metavar="MB")
    max_images: int = option(32, "most images in one request; past it, 413", metavar="N")
    max_pixels: int = option(40_000_000, "largest image, in pixels (width x height), checked "
                             "before it is decoded; past it, 422", metavar="N")
    max_beam: int = option(5, "largest beam a request may ask for; past it, 422", metavar="K")
    searches: int = option(8, "compiled searches kept (one per distinct set of search "
                           "options; the least recently used is dropped)", metavar="N")
    access_log: bool = option(False, "log a line per request (uvicorn's access log)")
    grace: float = option(30.0, "seconds given to accepted requests after SIGTERM or "
                          "Ctrl-C; a second signal exits at once", metavar="S")

    MOST = {"port": 65535, "workers": 64, "max_batch": 256, "queue": 100_000, "max_uploads": 10_000,
            "max_images": 1024, "max_beam": 32, "searches": 64}

    def check(self):
        check_positive(self, "port", "workers", "max_batch", "queue", "max_images", "max_uploads",
                       "max_pixels", "max_beam", "searches")
        check_range(self, 0.0, 10_000.0, "max_wait_ms")
        for name in ("timeout", "max_body_mb", "grace"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0. Received: {name}={getattr(self, name)}")
        if self.queue < self.max_images:
            raise ConfigError(f"queue must hold at least one request's images (max_images). "
                              f"Received: queue={self.queue}, max_images={self.max_images}")
