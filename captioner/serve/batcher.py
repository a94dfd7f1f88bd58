"""``Batcher``: the images of requests that wait together are decoded together.

One thread owns the model. While it decodes a batch, the images of new requests wait in
a bounded queue; when it is free it takes every waiting image that asks for the same
search (up to ``max_batch``) as one batch, padded to one of a few sizes (1, 2, 4, 8, then
multiples of 8) so that a handful of compiled shapes serve every batch size. A lone
request is decoded at once; a batch waits up to ``max_wait_ms`` only for requests whose
bodies are still being read (``arriving``).
A request that gives up (its client left, its deadline passed) takes its images that
have not started out of the queue, so they cost nothing.
"""

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import math
import time

import numpy as np


class QueueFull(Exception):
    """The queue has no room for a request's images; ``retry_after``: seconds, an
    estimate of when it will."""

    def __init__(self, retry_after):
        super().__init__(f"the server is busy; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclasses.dataclass(eq=False)
class Job:
    """One image to decode: (name, the image as read, its model input) and the search."""
    item: tuple
    search: object
    future: asyncio.Future
    started: bool = False


def bucket(count, most):
    """The batch size ``count`` images are decoded at: the next power of two up to 8,
    then the next multiple of 8 (padding wastes at most 7 images' work), at most
    ``most`` (a batch never holds more than ``most``)."""
    count = max(count, 1)
    size = 1 << math.ceil(math.log2(count)) if count <= 8 else 8 * math.ceil(count / 8)
    return min(most, size)


class Batcher:
    """Decodes waiting images in batches on the model's own thread (see the module
    docstring).

    Args:
        task: an ``ImageCaptioner``.
        max_batch, max_wait_ms, queue: ``ServeConfig``'s.
        searches: how many compiled searches to keep (least recently used dropped).
        on_batch: called with each batch's size (metrics), on the event loop.
    """

    def __init__(self, task, max_batch=16, max_wait_ms=2.0, queue=256, searches=8,
                 on_batch=None):
        self.task, self.max_batch, self.queue_size = task, max_batch, queue
        self.max_wait = max_wait_ms / 1000.0
        self.searches, self.on_batch = searches, on_batch
        self.waiting = collections.deque()  # Jobs not yet taken, oldest first
        self.arriving = 0                   # requests being read, that may join a batch
        self.compiled = collections.OrderedDict()  # search config -> None, recent last
        self.recent = collections.deque(maxlen=64)  # (time, images) of recent batches
        self.model = concurrent.futures.ThreadPoolExecutor(1, "captioner-model")
        self._wake = None
        self._loop_task = None

    # --- the event loop's side --------------------------------------------------------
    def start(self):
        self._wake = asyncio.Event()
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self):
        """Stops taking batches (after the one running) and the model's thread."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
        for job in self.waiting:
            if not job.future.done():
                job.future.cancel()
        self.waiting.clear()
        self.model.shutdown(wait=True, cancel_futures=True)

    @contextlib.contextmanager
    def arriving_request(self):
        """While a request's body is read and its images decoded: a batch may wait up to
        ``max_wait_ms`` for it, and stops waiting when it arrives or gives up."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1
            self._wake.set()

    @property
    def depth(self):
        """Images waiting to be decoded."""
        return len(self.waiting)

    def images_per_second(self, window=10.0):
        """Images decoded per second over the last ``window`` seconds."""
        now = time.monotonic()
        done = sum(count for at, count in self.recent if now - at <= window)
        return done / window

    def retry_after(self):
        """Seconds until the queue has likely drained: at least 1."""
        rate = self.images_per_second()
        return max(1, math.ceil(self.depth / rate)) if rate > 0 else 1

    async def caption(self, items, search):
        """Decodes ``items`` [(name, image, model input)] with ``search`` (a complete
        ``SearchConfig``: ``ImageCaptioner.search_config``'s) -> their ``ImageCaptions``.
        QueueFull where they do not fit; cancelled, it takes its waiting images back."""
        if self.depth + len(items) > self.queue_size:
            raise QueueFull(self.retry_after())
        loop = asyncio.get_running_loop()
        jobs = [Job(item, search, loop.create_future()) for item in items]
        self.waiting.extend(jobs)
        self._wake.set()
        try:
            return await asyncio.gather(*(job.future for job in jobs))
        except asyncio.CancelledError:
            self._withdraw(jobs)
            raise

    def _withdraw(self, jobs):
        for job in jobs:
            if not job.started:
                try:
                    self.waiting.remove(job)
                except ValueError:
                    pass
            if not job.future.done():
                job.future.cancel()

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            while not self.waiting:
                self._wake.clear()
                await self._wake.wait()
            await self._gather(loop)
            jobs = self._take()
            if not jobs:
                continue
            search = jobs[0].search
            if self.on_batch is not None:
                self.on_batch(len(jobs))
            try:
                answers = await loop.run_in_executor(
                    self.model, self._decode, [job.item for job in jobs], search)
            except Exception as error:  # the requests answer 500, the server goes on
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            self.recent.append((time.monotonic(), len(jobs)))
            for job, answer in zip(jobs, answers):
                if not job.future.done():
                    job.future.set_result(answer)

    async def _gather(self, loop):
        """Waits up to ``max_wait`` for requests still being read, while the batch has
        room for them."""
        deadline = loop.time() + self.max_wait
        while self.arriving and len(self.waiting) < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return

    def _take(self):
        """The oldest waiting job and the waiting jobs of its search, up to a batch."""
        first = self.waiting[0]
        taken, kept = [], collections.deque()
        while self.waiting:
            job = self.waiting.popleft()
            if len(taken) < self.max_batch and job.search == first.search:
                job.started = True
                taken.append(job)
            else:
                kept.append(job)
        self.waiting = kept
        return [job for job in taken if not job.future.done()]

    # --- the model's thread -----------------------------------------------------------
    def _decode(self, items, search):
        self._use(search)
        return self.task.answer_batch(items, search, pad_to=bucket(len(items), self.max_batch))

    def _use(self, search):
        """Keeps ``search``'s compiled graphs, dropping the least recently used past the
        bound."""
        self.compiled[search] = None
        self.compiled.move_to_end(search)
        while len(self.compiled) > self.searches:
            old, _ = self.compiled.popitem(last=False)
            self.task.drop_search(old)

    def warm(self, search):
        """Compiles ``search`` for every batch shape (on the model's thread; blocks)."""
        size = self.task.model.model_config.encoder.image_size
        blank = np.zeros((size, size, 3), np.uint8)
        shapes = sorted({bucket(count, self.max_batch) for count in range(1, self.max_batch + 1)})
        for shape in shapes:
            self.model.submit(self._decode, [(None, blank, blank)] * shape, search).result()
