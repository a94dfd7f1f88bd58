"""How big a report is, and how fast it opens: a 1,000-image split in headless Chromium.

    python -m benchmarks.viewer_report [--images 1000] [--model assets/model]
                                       [--out runs/viewer] [--screenshots docs/figures]

Makes a synthetic COCO-layout test split of ``--images`` images (``--style hard``, so the
captions name absent objects), writes ``caption.py --coco ... --html`` with the model,
and prints: the seconds to caption, score and write the report; the folder's size, its
files and its largest file; then, in Debian's Chromium, the milliseconds from opening
``index.html`` to the first 20 images drawn, to the worst-CIDEr-D order, and to the
hallucination filter. With ``--screenshots`` it saves the report (sorted worst first, a
word clicked, the boxes on) and the viewer of the bundled samples (a word clicked) as
PNGs for the README.

Internal import: the synthetic data generator, for the 1,000 images it reports on.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def folder_size(folder):
    sizes = [os.path.getsize(os.path.join(path, name))
             for path, _, names in os.walk(folder) for name in names]
    return sum(sizes), len(sizes), max(sizes)


def timed_ready(page, action):
    started = time.perf_counter()
    action()
    page.wait_for_selector("body[data-ready=true]", timeout=60000)
    page.wait_for_selector("canvas.view:not([data-word])", state="detached", timeout=60000)
    return 1000 * (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--model", default=os.path.join(ROOT, "assets", "model"))
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "viewer"))
    parser.add_argument("--screenshots", default=None, metavar="DIR")
    args = parser.parse_args()
    from benchmarks.common import machine
    from captioner.data.synthetic import generate
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    data = os.path.join(args.out, "data")
    if not os.path.isdir(os.path.join(data, "annotations")):
        generate(data, seed=11, splits={"test": args.images}, style="hard")
    report = os.path.join(args.out, "report")
    started = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(ROOT, "caption.py"), "--coco", data,
                    "--split", "test", "--model", args.model, "--html", report,
                    "--out", os.path.join(args.out, "evaluation")], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    writing = time.perf_counter() - started
    size, files, largest = folder_size(report)

    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        opened = timed_ready(page, lambda: page.goto("file://" + os.path.join(report,
                                                                              "index.html")))
        ordered = timed_ready(page, lambda: page.select_option("#order", "cider-ascending"))
        filtered = timed_ready(page, lambda: page.check("#only-absent"))
        shown = page.locator("#controls .count").inner_text()
        if args.screenshots:
            page.uncheck("#only-absent")
            page.wait_for_selector("body[data-ready=true]")
            card = page.locator(".card").first
            card.locator("input.boxes").check()
            card.locator(".word").nth(2).click()
            page.wait_for_timeout(300)
            page.screenshot(path=os.path.join(args.screenshots, "viewer_report.png"))
            samples = os.path.join(args.out, "samples")
            subprocess.run([sys.executable, os.path.join(ROOT, "caption.py"),
                            os.path.join(ROOT, "assets", "samples"), "--model", args.model,
                            "--beam", "3", "--n-best", "2", "--html", samples], check=True,
                           env=env, stdout=subprocess.DEVNULL)
            viewer = browser.new_page(viewport={"width": 1100, "height": 760})
            viewer.goto("file://" + os.path.join(samples, "index.html"))
            viewer.wait_for_selector("body[data-ready=true]")
            viewer.locator(".card").nth(3).scroll_into_view_if_needed()
            viewer.locator(".card").nth(0).locator(".word").nth(2).hover()
            viewer.wait_for_timeout(300)
            viewer.screenshot(path=os.path.join(args.screenshots, "viewer_captions.png"))
        browser.close()
    print(json.dumps({
        "figure": "caption.py --coco --html report of a synthetic hard-style split",
        "images": args.images, "model": os.path.relpath(args.model, ROOT),
        "caption_score_write_seconds": round(writing, 1), "folder_mb": round(size / 2**20, 1),
        "files": files, "largest_file_kb": round(largest / 1024, 1),
        "open_ms": round(opened), "sort_ms": round(ordered), "filter_ms": round(filtered),
        "after_filter": shown, "machine": machine()}))


if __name__ == "__main__":
    main()
