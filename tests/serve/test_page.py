"""The server's page in headless Chromium: an uploaded image gets its caption, and pointing
at a colour word lights the object of that colour (its box, from the scene the image was
drawn from), with no console error and no request beyond the server."""

import json
import os
import shutil

import numpy as np
import pytest

from tests.serve.helpers import Served

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow,  # a server and a browser: .ci/run's slow pass
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                 "(.ci/run installs Debian's chromium package)")]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Scenes the bundled model was not trained on (another seed of its data): per image
    its path and objects {colour: [boxes]}."""
    from captioner.data.synthetic import generate
    folder = tmp_path_factory.mktemp("scenes")
    generate(str(folder), seed=11, splits={"test": 8})
    with open(folder / "annotations" / "instances_test2017.json") as handle:
        instances = json.load(handle)
    scenes = []
    for image in instances["images"]:
        colours = {}
        for box in instances["annotations"]:
            if box["image_id"] == image["id"]:
                colours.setdefault(box["attributes"]["color"], []).append(box["bbox"])
        scenes.append((str(folder / "test2017" / image["file_name"]), colours,
                       (image["width"], image["height"])))
    return scenes


def test_an_upload_is_captioned_and_a_colour_word_lights_its_object(scenes):
    served = Served()
    try:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            errors, elsewhere = [], []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda r: r.url.startswith(("http", "ws")) and
                    not r.url.startswith(served.url) and elsewhere.append(r.url))
            page.goto(served.url + "/")
            lit_objects = 0
            for path, colours, (width, height) in scenes:
                page.set_input_files("#files", path)
                page.wait_for_selector(f".card .name:text-is('{os.path.basename(path)}')")
                page.wait_for_selector("canvas.view[data-word]", state="attached")  # drawn
                words = page.locator(".card .word").all_inner_texts()
                assert words and page.locator("#status").inner_text().startswith("1 image")
                named = [k for k, word in enumerate(words) if word in colours]
                if not named:
                    continue
                index = named[0]
                page.mouse.move(1, 1)  # off the words: the image plain
                assert page.locator("canvas.view").get_attribute("data-word") == ""
                plain = pixels(page)
                page.locator(".card .word").nth(index).hover()
                assert page.locator("canvas.view").get_attribute("data-word") == str(index)
                lit = pixels(page)
                glow = np.abs(lit - plain).sum(-1)  # where the overlay is, and how strong
                row, column = np.unravel_index(glow.argmax(), glow.shape)
                x, y = column * width / glow.shape[1], row * height / glow.shape[0]
                assert any(bx - 4 <= x <= bx + bw + 4 and by - 4 <= y <= by + bh + 4
                           for bx, by, bw, bh in colours[words[index]]), (path, words[index])
                lit_objects += 1
            assert lit_objects >= 4
            assert errors == [] and elsewhere == []
            browser.close()
    finally:
        served.process.terminate()
        served.wait(60)


def pixels(page):
    width, height, data = page.evaluate(
        """() => { const c = document.querySelector('canvas.view');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
            return [c.width, c.height, Array.from(d.data)]; }""")
    return np.array(data, np.float64).reshape(height, width, 4)[..., :3]
