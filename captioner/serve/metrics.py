"""The server's Prometheus metrics (prometheus-client), in a registry of its own so that
each app (and each test) counts only its own requests.

    captioner_requests_total{route, status}     requests answered
    captioner_request_seconds{route}            latency, arrival to answer (histogram)
    captioner_batch_size                        images per decoded batch (histogram)
    captioner_queue_depth                       images waiting to be decoded
    captioner_images_total                      images captioned
    captioner_images_per_second                 over the last 10 s
    captioner_ready                             1 once the searches are compiled

With ``--workers N`` each process keeps its own; a scrape is answered by one of them
(run replicas of one worker each where one scrape must see one server's all).
"""

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """What the server counts (see the module docstring). ``depth`` and ``rate`` are
    read at each scrape."""

    def __init__(self, depth=lambda: 0, rate=lambda: 0.0, ready=lambda: False):
        self.registry = CollectorRegistry()
        self.requests = Counter("captioner_requests", "Requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("captioner_request_seconds", "Seconds from arrival to answer",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("captioner_batch_size", "Images per decoded batch",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.images = Counter("captioner_images", "Images captioned", registry=self.registry)
        Gauge("captioner_queue_depth", "Images waiting to be decoded",
              registry=self.registry).set_function(depth)
        Gauge("captioner_images_per_second", "Images captioned per second over the last 10 s",
              registry=self.registry).set_function(rate)
        Gauge("captioner_ready", "1 once the model is loaded and its searches compiled",
              registry=self.registry).set_function(lambda: float(ready()))

    def answered(self, route, status, seconds):
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def text(self):
        """(the exposition text, its content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
