"""The page at ``/``: the viewer's style and script (``captioner.viewer``) with a form
that sends images to the server and draws its answers as viewer cards; and the model
card's sections that ``/v1/model`` quotes."""

import os
import re

from captioner.viewer.pages import STATIC as VIEWER_STATIC

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# the page talks to its own server only; images are shown from blob: URLs of the files
POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
          "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'")


def _read(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as handle:
        return handle.read()


def html():
    """The page, its style and scripts inlined."""
    text = _read(STATIC, "serve.html")
    for placeholder, folder, name in (("/*STYLE*/", VIEWER_STATIC, "viewer.css"),
                                      ("/*SCRIPT*/", VIEWER_STATIC, "viewer.js"),
                                      ("/*SERVE*/", STATIC, "serve.js")):
        text = text.replace(placeholder, _read(folder, name))
    return text


def card_sections(card):
    """{"intended_use", "limitations"}: those sections of a model card (markdown), as
    text; empty where the card or the section is missing."""
    found = {"intended_use": "", "limitations": ""}
    if not card:
        return found
    for title, body in re.findall(r"^## +(.+?)\s*$\n(.*?)(?=^## |\Z)", card, re.M | re.S):
        key = title.strip().lower().replace(" ", "_")
        if key in found:
            found[key] = body.strip()
    return found
