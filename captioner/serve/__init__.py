"""``captioner serve``: a model behind HTTP, on Starlette and uvicorn.

    app.py       the routes, the caption endpoint, errors, request ids, metrics
    batcher.py   requests that wait together are decoded together, on the model's thread
    uploads.py   bodies, images and options of a request, each refused with its status
    metrics.py   Prometheus metrics
    schema.py    the OpenAPI document and its page
    page.py      the page at / (the viewer's cards, live)
    server.py    uvicorn: one process or several, signals, graceful shutdown

    from captioner.serve import create_app
    app = create_app(ImageCaptioner.from_folder("assets/model"))   # any ASGI server runs it
"""

from captioner.serve.app import create_app

__all__ = ["create_app"]
