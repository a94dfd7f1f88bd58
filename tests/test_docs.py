"""The documentation: the site builds with warnings as errors, no page links to nothing
(nor does the README), every command's help is in the reference, and a browser opens the
home page with its picture and nothing fetched from outside."""

import functools
import html
import html.parser
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse

import pytest

from tests.conftest import ROOT

pytest.importorskip("mkdocs")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr, result.stderr[-3000:]
    return folder


class Links(html.parser.HTMLParser):
    """The href and src of a page, and its element ids."""

    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attributes):
        attributes = dict(attributes)
        if "id" in attributes:
            self.ids.add(attributes["id"])
        for name in ("href", "src"):
            if attributes.get(name):
                self.links.append(attributes[name])


@functools.lru_cache(maxsize=None)
def parsed(path):
    parser = Links()
    with open(path, encoding="utf-8") as handle:
        parser.feed(handle.read())
    return parser


def test_no_page_of_the_site_links_to_nothing(site):
    pages = [os.path.join(folder, name) for folder, _, names in os.walk(site)
             for name in names if name.endswith(".html") and name != "404.html"]
    assert len(pages) > 20  # (404.html links from the server's root, wherever it is)
    checked = 0
    for page in pages:
        for link in parsed(page).links:
            parts = urllib.parse.urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:")):
                continue  # outside the site: papers, data downloads
            target = os.path.normpath(os.path.join(os.path.dirname(page),
                                                   urllib.parse.unquote(parts.path)))
            if parts.path == "":
                target = page
            elif os.path.isdir(target):
                target = os.path.join(target, "index.html")
            assert os.path.isfile(target), f"{os.path.relpath(page, site)} links to {link}"
            if parts.fragment and target.endswith(".html"):
                assert parts.fragment in parsed(target).ids, \
                    f"{os.path.relpath(page, site)} links to {link}: no such anchor"
            checked += 1
    assert checked > 500


def test_the_readme_links_only_to_files_that_exist():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link for link in links if not urllib.parse.urlsplit(link).scheme]
    assert len(local) > 15
    for link in local:
        assert os.path.exists(os.path.join(ROOT, link.split("#")[0])), link
    assert len(text.splitlines()) <= 150


def test_the_command_reference_is_every_command_s_help(site):
    from captioner.commands.main import COMMANDS
    page = open(os.path.join(site, "reference", "commands", "index.html"),
                encoding="utf-8").read()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    for name in COMMANDS:
        assert f"usage: captioner {name} " in text, name
    assert "--attention-supervision" in text and "--resume [DIR]" in text
    assert "<!-- help" not in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs "
                    "Debian's chromium package)")
@pytest.mark.slow  # a browser: .ci/run's slow pass
def test_a_browser_opens_the_home_page(site):
    playwright = pytest.importorskip("playwright.sync_api")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = f"http://127.0.0.1:{server.server_address[1]}/"
    errors, outside = [], []
    try:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda error: errors.append(str(error)))

            def route(route):
                if route.request.url.startswith(home):
                    return route.continue_()
                outside.append(route.request.url)
                return route.abort()
            page.route("**/*", route)
            page.goto(home, wait_until="load")
            assert page.locator("h1").first.inner_text().rstrip("¶") == "captioner"
            figure = page.locator("img[src*='sample_attention']")
            assert figure.evaluate("image => image.complete && image.naturalWidth") > 500
            navigation = page.locator("nav.md-nav--primary")  # every page, one click away
            assert navigation.get_by_role("link", name="Train on COCO").count() == 1
            page.locator("article").get_by_role("link", name="Getting started").click()
            page.wait_for_url(home + "getting-started/")
            assert page.locator("h2").first.inner_text().rstrip("¶") == "Install"
            browser.close()
    finally:
        server.shutdown()
    assert errors == [] and outside == []
