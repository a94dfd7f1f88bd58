"""The API, described: the OpenAPI document at ``/openapi.json`` and the same as a page at
``/docs`` (drawn here, so it needs no network, unlike a Swagger UI from a CDN)."""

import dataclasses
import html as markup
import json

from captioner.config import SearchConfig, field_type
from captioner.version import __version__

TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", tuple: "array"}
ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "string", "description": "one line: what was wrong"},
                        "id": {"type": "string", "description": "a 500's id, also in the "
                               "server's log"},
                        "results": {"type": "array", "description": "per image, where "
                                    "none could be read", "items": {"type": "object"}}}}
WORD = {"type": "object", "properties": {
    "word": {"type": "string"}, "probability": {"type": "number"},
    "map": {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
            "description": "with maps=true: the word's attention over the grid (rows of "
                           "columns), summing to 1"}}}
CAPTION = {"type": "object", "properties": {
    "caption": {"type": "string"}, "words": {"type": "array", "items": WORD},
    "log_probability": {"type": "number"}, "score": {"type": "number"},
    "finished": {"type": "boolean"},
    "attention_png_base64": {"type": "string", "description": "with heatmaps=true: a PNG, "
                             "a panel per word with its map over the image"}}}
RESULT = {"type": "object", "description": "as `captioner caption --json` prints it; an "
          "image that could not be read has only path and error", "properties": {
              "path": {"type": ["string", "null"], "description": "the part's file name"},
              **CAPTION["properties"],
              "out_of_domain": {"type": "boolean", "description": "unlike the training "
                                "images: the caption is likely wrong"},
              "domain_distance": {"type": "number", "description": "how unlike the "
                                  "training images; above domain_threshold: out of domain"},
              "domain_threshold": {"type": "number"},
              "n_best": {"type": "array", "items": CAPTION},
              "grid": {"type": "array", "items": {"type": "integer"}, "description":
                       "with maps=true: (rows, columns) of the maps"},
              "error": {"type": "string"}}}
STATUSES = {
    "400": "a malformed body (multipart) or Content-Length",
    "408": "the body did not arrive within the deadline",
    "413": "the body or the number of images is over the limit",
    "415": "a body that is not an image, or no image that is one",
    "422": "an unknown or bad option (named), or images that cannot be decoded",
    "503": "the queue is full (Retry-After says when to retry), or the server is starting "
           "or stopping",
    "504": "not answered within the deadline",
}


def _option(name, kind, description, default=None):
    schema = {"type": kind}
    if kind == "array":  # words, given as one comma-separated value
        schema["items"] = {"type": "string"}
        default = list(default) if default else None
    if default is not None:
        schema["default"] = default
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def openapi(service):
    """The OpenAPI 3.1 document of a ``captioner.serve.app.Service``'s app."""
    defaults = service.search.to_dict()
    options = [_option(field.name, TYPES[field_type(field)], field.metadata.get("help", ""),
                       defaults.get(field.name)) for field in dataclasses.fields(SearchConfig)]
    options += [_option("maps", "boolean", "add each word's attention map as numbers", False),
                _option("heatmaps", "boolean", "add each caption's heat-map figure as a "
                        "base64 PNG", False)]
    errors = {status: {"description": text, "content": {"application/json": {
        "schema": ERROR}}} for status, text in STATUSES.items()}
    plain = {"200": {"description": "OK", "content": {"application/json": {
        "schema": {"type": "object"}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "captioner", "version": __version__,
                 "description": "Captions images and says where the model looked for each "
                                "word. Options are query parameters (or, in a multipart "
                                "body, form fields)."},
        "paths": {
            "/v1/caption": {"post": {
                "summary": "Caption one or more images",
                "parameters": options,
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "properties": {
                        "images": {"type": "array", "items": {"type": "string",
                                                              "format": "binary"}}}}},
                    "image/*": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {"200": {"description": "one entry per image, in order",
                                      "content": {"application/json": {"schema": {
                                          "type": "array", "items": RESULT}}}},
                              **errors}}},
            "/v1/model": {"get": {"summary": "What the model is: its data, decoder, grid, "
                                             "limits, intended use and limitations",
                                  "responses": plain}},
            "/healthz": {"get": {"summary": "Alive", "responses": plain}},
            "/readyz": {"get": {"summary": "Ready: the model's searches are compiled (503 "
                                           "before, and while stopping)",
                                "responses": plain}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text"}}}},
        },
    }


def docs_page(document):
    """The OpenAPI document as a page: each path, its options and its statuses."""
    parts = [f"<h1>{markup.escape(document['info']['title'])} API "
             f"{markup.escape(document['info']['version'])}</h1>",
             f"<p>{markup.escape(document['info']['description'])} "
             "The document itself: <a href='openapi.json'>openapi.json</a>.</p>",
             "<pre>curl -F images=@photo.jpg 'http://HOST:PORT/v1/caption?beam=3&amp;n_best=2'"
             "</pre>"]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            parts.append(f"<h2><code>{method.upper()} {markup.escape(path)}</code></h2>"
                         f"<p>{markup.escape(operation['summary'])}</p>")
            if operation.get("parameters"):
                rows = "".join(
                    f"<tr><td><code>{markup.escape(p['name'])}</code></td>"
                    f"<td>{p['schema']['type']}</td>"
                    f"<td>{markup.escape(json.dumps(p['schema'].get('default')))}</td>"
                    f"<td>{markup.escape(p['description'])}</td></tr>"
                    for p in operation["parameters"])
                parts.append("<table><tr><th>option</th><th>type</th><th>default</th>"
                             f"<th></th></tr>{rows}</table>")
            statuses = "".join(f"<li><b>{status}</b> {markup.escape(r['description'])}</li>"
                               for status, r in operation["responses"].items())
            parts.append(f"<ul>{statuses}</ul>")
    style = ("body{font:14px/1.45 system-ui,sans-serif;margin:1em 2em;max-width:60em}"
             "td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}"
             "pre{background:#f3f3f3;padding:.6em}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>captioner "
            f"API</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")
