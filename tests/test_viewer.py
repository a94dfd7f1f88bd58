"""The browser viewer, in headless Chromium (Debian's, driven by Playwright): pages load
from the file system without console errors or network requests, a clicked word puts
its own map over the image, the n-best and glimpse switchers switch, the report's filter
shows exactly the captions that name an absent object, and data pages load lazily."""

import copy
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                "(.ci/run installs Debian's chromium package)")
SAMPLES = os.path.join(ROOT, "assets", "samples")


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        # file-access-from-files: each file:// image is its own origin to Chromium, and
        # would taint the canvas the tests read pixels from (the page itself needs no flag)
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--allow-file-access-from-files"])
        yield browser
        browser.close()


class Page:
    """A page opened from ``folder``/index.html; records console errors and every request
    that is not for a file (aborted), and waits until the items are drawn."""

    def __init__(self, browser, folder):
        self.page = browser.new_page(viewport={"width": 1100, "height": 900})
        self.errors, self.network, self.files = [], [], []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

        def route(route):
            url = route.request.url
            if url.startswith(("file:", "data:")):
                self.files.append(url)
                return route.continue_()
            self.network.append(url)
            return route.abort()
        self.page.route("**/*", route)
        self.page.goto("file://" + os.path.join(os.fspath(folder), "index.html"))
        self.ready()

    def ready(self):
        self.page.wait_for_selector("body[data-ready=true]", timeout=15000)
        # every picture drawn (a selector: the page's policy forbids the eval that
        # wait_for_function polls with)
        self.page.wait_for_selector("canvas.view:not([data-word]):not([data-glimpse])",
                                    state="detached", timeout=15000)

    def pixels(self, card=0):
        width, height, data = self.page.evaluate(
            """(index) => { const c = document.querySelectorAll('canvas.view')[index];
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
                return [c.width, c.height, Array.from(d.data)]; }""", card)
        return np.array(data, np.float64).reshape(height, width, 4)[..., :3]

    def card(self, index=0):
        return self.page.locator(".card").nth(index)

    def clean(self):
        assert self.errors == [] and self.network == []


def read_pages(folder):
    """The items of every data page, as the page's loader receives them."""
    items = []
    for name in sorted(os.listdir(os.path.join(folder, "data"))):
        if name.startswith("page_"):
            with open(os.path.join(folder, "data", name), encoding="utf-8") as handle:
                text = handle.read()
            number, rest = text[len("captionerViewer.page("):-len(");\n")].split(",", 1)
            items += json.loads(rest)
    return items


def word_map(word, grid):
    raw = np.frombuffer(__import__("base64").b64decode(word["map"]), np.uint8)
    return raw.reshape(grid).astype(np.float64)


def cell_centre(cell, grid, shape):
    rows, columns = grid
    row, column = divmod(int(cell), columns)
    return (int((row + 0.5) * shape[0] / rows), int((column + 0.5) * shape[1] / columns))


@pytest.fixture(scope="module")
def caption_viewer(tmp_path_factory):
    from captioner.commands.caption import main
    folder = tmp_path_factory.mktemp("viewer") / "html"
    assert main([SAMPLES, "--html", str(folder), "--beam", "3", "--n-best", "2"]) == 0
    return folder


@pytest.mark.slow  # a browser: .ci/run's slow pass
def test_a_clicked_word_lights_up_its_own_map(browser, caption_viewer):
    page = Page(browser, caption_viewer)
    items = read_pages(caption_viewer)
    assert page.page.locator(".card").count() == len(items) == len(os.listdir(SAMPLES))
    grid = tuple(json.loads(open(os.path.join(caption_viewer, "data", "manifest.js"))
                            .read()[len("captionerViewer.manifest("):-3])["grid"])
    plain = page.pixels(0)
    words = items[0]["hypotheses"][0]["words"]
    peaks = [np.unravel_index(word_map(w, grid).argmax(), grid) for w in words]
    first, other = 0, next(k for k, p in enumerate(peaks) if
                           abs(p[0] - peaks[0][0]) + abs(p[1] - peaks[0][1]) >= 3)
    for index in (first, other):
        page.card(0).locator(".word").nth(index).click()
        assert page.card(0).locator("canvas").get_attribute("data-word") == str(index)
        lit = page.pixels(0)
        values = word_map(words[index], grid)
        hot = cell_centre(np.argmax(values), grid, plain.shape)
        cold = cell_centre(np.argmin(values), grid, plain.shape)
        assert np.abs(lit[hot] - plain[hot]).sum() > 60  # the overlay is brightest here
        assert np.abs(lit[cold] - plain[cold]).sum() < 15  # and absent where the map is 0
        info = page.card(0).locator(".info").inner_text()
        assert words[index]["w"] in info and f"{words[index]['p']:.3f}" in info
    page.card(0).locator(".word").nth(other).click()  # a second click lets go,
    page.page.mouse.move(1, 1)  # and with the pointer off the words, the image is plain
    assert np.abs(page.pixels(0) - plain).max() < 1
    page.clean()


@pytest.mark.slow  # a browser: .ci/run's slow pass
def test_the_n_best_switcher_shows_each_captions_words(browser, caption_viewer):
    page = Page(browser, caption_viewer)
    items = read_pages(caption_viewer)
    for rank in (1, 0):
        page.card(0).locator(f"button[data-hypothesis='{rank}']").click()
        shown = page.card(0).locator(".word").all_inner_texts()
        assert shown == [w["w"] for w in items[0]["hypotheses"][rank]["words"]]
        assert page.card(0).locator("canvas").get_attribute("data-hypothesis") == str(rank)
    assert items[0]["hypotheses"][0]["caption"] != items[0]["hypotheses"][1]["caption"]
    page.clean()


@pytest.fixture(scope="module")
def report(tmp_path_factory, synthetic_coco):
    """The bundled model's report on the test split, two of whose captions are made to
    name objects their images do not hold, and one to state a false count."""
    from captioner.data.coco import load_coco_split
    from captioner.tasks import ImageCaptioner
    from captioner.viewer.report import write_report
    saved = ImageCaptioner.from_folder(os.path.join(ROOT, "assets", "model"))
    records, instances = load_coco_split(synthetic_coco, "test")
    evaluation = saved.evaluate(records, instances)
    for record in records[1:4:2]:
        best = copy.deepcopy(evaluation.captions[record.image_id][0])
        colours = {o["attributes"]["color"] for o in instances[record.image_id]}
        colour = sorted({"red", "green", "blue", "yellow", "purple"} - colours)[0]
        best.words = ["a", colour, "circle", "and"] + best.words
        best.caption = " ".join(best.words)
        best.probabilities = [0.5] * 4 + best.probabilities
        best.alphas = np.concatenate([best.alphas[:1].repeat(4, 0), best.alphas])
        evaluation.captions[record.image_id][0] = best
    best = copy.deepcopy(evaluation.captions[records[4].image_id][0])  # 1 to 3 shapes
    best.words = ["four", "shapes", ":"] + best.words
    best.caption = " ".join(best.words)
    best.probabilities = [0.5] * 3 + best.probabilities
    best.alphas = np.concatenate([best.alphas[:1].repeat(3, 0), best.alphas])
    evaluation.captions[records[4].image_id][0] = best
    folder = tmp_path_factory.mktemp("report") / "html"
    write_report(str(folder), saved, records, instances, evaluation, "test report")
    return folder, records, instances, evaluation


@pytest.mark.slow  # a browser: .ci/run's slow pass
def test_the_report_filters_to_exactly_the_captions_with_a_false_claim(browser, report):
    from captioner.metrics.grounding import absent_mentions
    from captioner.metrics.lexicon import ObjectLexicon
    from captioner.metrics.statements import false_words
    folder, records, instances, evaluation = report
    lexicon = ObjectLexicon.from_instances(instances)
    absent = {str(r.path) for r in records if absent_mentions(
        evaluation.captions[r.image_id][0].words, instances[r.image_id], lexicon)}
    false = {str(r.path) for r in records if false_words(
        evaluation.captions[r.image_id][0].words, instances[r.image_id],
        (r.width, r.height), lexicon)}
    expected = absent | false
    assert len(absent) >= 2 and str(records[4].path) in false and len(expected) < len(records)
    page = Page(browser, folder)
    assert page.page.locator("#summary").inner_text().count("CIDEr-D") == 1

    def names():
        return {n.strip() for n in page.page.locator(".card .name:first-child")
                .all_inner_texts()}
    assert names() == {str(r.path) for r in records}
    page.page.check("#only-absent")
    page.ready()
    assert names() == expected
    kinds = ("mispaired", "wrong attribute", "wrong category", "invented")
    shown = [n.strip() for n in page.page.locator(".card .name:first-child").all_inner_texts()]
    for card, name in enumerate(shown):  # each shows the false claim's words marked
        marked = ".word.absent" if name in absent else ".word.false"
        assert page.card(card).locator(marked).count() >= 1
        page.card(card).locator(marked).first.click()  # and says the kind of error
        info = page.card(card).locator(".info").inner_text()
        if name in absent:
            assert "does not hold (" in info and any(f"({k})" in info for k in kinds), info
        else:
            assert "part of a false " in info and " statement" in info, info
            if name == str(records[4].path):
                assert "false count statement" in info, info
        page.card(card).locator(marked).first.click()
    page.page.uncheck("#only-absent")
    page.page.select_option("#order", "cider-ascending")
    page.ready()
    shown = [float(t.split()[-1]) for t in page.page.locator(".card .score").all_inner_texts()]
    assert shown == sorted(shown) and len(shown) == len(records)
    page.card(0).locator("input.boxes").check()  # the boxes drawn over the image
    assert page.card(0).locator("canvas").get_attribute("data-word") == ""
    page.clean()


@pytest.mark.slow  # a browser: .ci/run's slow pass
def test_a_ram_glimpse_path_steps_glimpse_by_glimpse(browser, tmp_path):
    from captioner.commands.caption import main
    from captioner.config import RAMConfig
    from captioner.models.ram import create_ram
    from tests.helpers import save_model
    ram = create_ram(RAMConfig(height=16, width=16, classes=3, glimpses=3, patch=4, scales=2,
                               glimpse_hidden=8, glimpse_units=16, core_units=16, seed=1), seed=0)
    save_model(tmp_path / "ram", ram, ["a", "b", "c"])
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / f"{k}.png")
    assert main([str(tmp_path / "0.png"), str(tmp_path / "1.png"), "--model",
                 str(tmp_path / "ram"), "--html", str(tmp_path / "html")]) == 0
    page = Page(browser, tmp_path / "html")
    item = read_pages(tmp_path / "html")[0]
    before = page.pixels(0)
    for step in (2, 1):
        page.card(0).locator(f"button[data-step='{step}']").click()
        assert page.card(0).locator("canvas").get_attribute("data-glimpse") == str(step)
        assert page.card(0).locator(".patches img").count() == 2  # one per scale
        glimpse = item["glimpses"][step]
        assert f"glimpse {step + 1} of 3" in page.card(0).locator(".info").inner_text()
        assert page.card(0).locator(".patches img").first.get_attribute("src") == \
            glimpse["patches"][0]
    assert np.abs(page.pixels(0) - before).max() > 0  # the path grew
    page.clean()


@pytest.mark.slow  # a browser: .ci/run's slow pass
def test_a_transformers_layers_and_heads_each_show_their_own_map(browser, tmp_path):
    """A word's map, then layer 2 head 1's, then back: each lights up its own cell."""
    from captioner.results import Caption
    from captioner.viewer.pages import ViewerWriter, caption_item
    grid = (4, 4)
    alphas = np.zeros((2,) + grid)
    alphas[:, 0, 0] = 1.0  # the reduced map: the top left cell
    heads = np.zeros((2, 2, 3) + grid)  # (words, layers, heads, H, W)
    for layer in range(2):
        for head in range(3):
            heads[:, layer, head, 3 - layer, 3 - head] = 1.0  # each its own cell
    caption = Caption("a b", ["a", "b"], [0.5, 0.5], 0.0, 0.0, True, alphas, heads=heads)
    with ViewerWriter(tmp_path / "html", "captions", "heads", grid=grid) as html:
        html.add(np.full((64, 64, 3), 40, np.uint8),
                 {"name": "x", "hypotheses": [caption_item(caption)]})
    page = Page(browser, tmp_path / "html")
    plain = page.pixels(0)
    page.card(0).locator(".word").nth(1).click()

    def lit():
        changed = np.abs(page.pixels(0) - plain).sum(-1)
        return {cell for cell in np.ndindex(grid)
                if changed[cell_centre(np.ravel_multi_index(cell, grid), grid, plain.shape)] > 60}
    assert lit() == {(0, 0)}
    select = page.card(0).locator("select.head")
    assert select.locator("option").count() == 1 + 2 * 3
    select.select_option("1,0")
    assert page.card(0).locator("canvas").get_attribute("data-map") == "1,0"
    assert lit() == {(2, 3)}
    assert "layer 2, head 1" in page.card(0).locator(".info").inner_text()
    select.select_option("0,2")
    assert lit() == {(3, 1)}
    select.select_option("")
    assert lit() == {(0, 0)}
    page.clean()


@pytest.mark.slow  # a browser: .ci/run's slow pass
def test_data_pages_load_only_when_shown(browser, tmp_path):
    from captioner.results import Caption
    from captioner.viewer.pages import ViewerWriter, caption_item
    rng = np.random.default_rng(1)
    with ViewerWriter(tmp_path / "html", "report", "lazy", grid=(2, 2), page_size=4) as html:
        for k in range(45):
            words = ["w"] * 3
            caption = Caption("w w w", words, [1.0] * 3, 0.0, 0.0, True, rng.random((3, 2, 2)))
            html.add(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                     {"name": f"image {k}", "hypotheses": [caption_item(caption)],
                      "cider": float(k)}, {"cider": float(k), "absent": k % 2})
    pages = lambda: {u.rsplit("/", 1)[1] for u in page.files if "/data/page_" in u}  # noqa: E731
    page = Page(browser, tmp_path / "html")
    assert pages() == {f"page_{n:04d}.js" for n in range(5)}  # 20 shown, 4 a page
    page.page.get_by_text("next ›").click()
    page.ready()
    assert pages() == {f"page_{n:04d}.js" for n in range(10)}
    assert page.card(0).locator(".name").first.inner_text() == "image 20"
    page.clean()


def test_a_viewer_replaces_a_viewer_and_never_other_files(tmp_path):
    from captioner.errors import OutputError
    from captioner.viewer.pages import ViewerWriter
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match=r"holds files that are not a viewer \(notes.txt\)"):
        ViewerWriter(tmp_path / "mine", "captions", "x")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    for title in ("first", "second"):
        with ViewerWriter(tmp_path / "html", "captions", title, grid=(2, 2)) as html:
            html.add(np.zeros((4, 4, 3), np.uint8), {"name": "a", "hypotheses": []})
        (tmp_path / "html" / f"{title}.txt").write_text(title)  # a user's, beside it
    assert "<title>second</title>" in (tmp_path / "html" / "index.html").read_text()
    assert (tmp_path / "html" / "first.txt").read_text() == "first"  # kept by the second
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no leftovers
    with ViewerWriter(tmp_path / "mine", "captions", "x", overwrite=True) as html:
        html.add(np.zeros((4, 4, 3), np.uint8), {"name": "a", "hypotheses": []})
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "mine" / "index.html").is_file()


INJECTIONS = ['<img src=x onerror="window.owned=1">', "</script><script>window.owned=2</script>",
              "javascript:window.owned=3", "\" onmouseover=\"window.owned=4", "${window.owned=5}"]


@pytest.mark.slow  # a browser: .ci/run's slow pass
def test_names_captions_and_labels_are_shown_as_text_never_run(browser, tmp_path):
    from captioner.viewer.pages import ViewerWriter, encode_map
    folder = tmp_path / "html"
    text = " ".join(INJECTIONS)
    with ViewerWriter(folder, "captions", text, grid=(2, 2),
                      summary=[["not read", text, text]]) as html:
        for name in INJECTIONS:
            words = [{"w": word, "p": 0.5, **encode_map(np.eye(2))} for word in INJECTIONS]
            html.add(np.zeros((8, 8, 3), np.uint8), {"name": name, "warning": name,
                                                     "hypotheses": [{
                                                         "caption": text, "score": 0.0,
                                                         "log_prob": 0.0, "words": words}]})
    page = Page(browser, folder)
    dialogs = []
    page.page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.page.mouse.move(100, 100)
    assert page.page.evaluate("() => window.owned === undefined")
    assert page.page.locator("img[src='x']").count() == 0 and dialogs == []
    shown = page.page.inner_text("body")
    assert all(name in shown for name in INJECTIONS)
    page.clean()
