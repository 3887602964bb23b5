"""The README's screenshot: the search page over the demo collection, a demo photo searched, the verified matches
of its first result shown. Run from the repository root, after ``make index``::

    python -m docs.make_screenshot [--query <photo>] [--output docs/screenshot.png] [serve.py overrides ...]

e.g. ``python -m docs.make_screenshot default_rerank=fusion``. Needs Debian's ``chromium`` and the ``playwright``
Python package (no browser download).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from hydra import compose, initialize_config_dir
from playwright.sync_api import expect, sync_playwright

from serve import build_app
from tests.support.server import CHROMIUM, CHROMIUM_ARGS, running_server

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO = REPO_ROOT / "data" / "demo"
TIMEOUT_MS = 120_000


def first_demo_landmark_query() -> Path:
    """The first demo test photo that shows an indexed landmark (per ``retrieval_solution_v2.1.csv``)."""
    with open(DEMO / "retrieval_solution_v2.1.csv", newline="") as handle:
        query_id = next(row["id"] for row in csv.DictReader(handle) if row["images"] != "None")
    return DEMO / "test" / query_id[0] / query_id[1] / query_id[2] / f"{query_id}.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--query", type=Path, default=None, help="the photo to search (default: a demo query)"
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "screenshot.png")
    parser.add_argument("--width", type=int, default=1440, help="browser window width in pixels")
    parser.add_argument("overrides", nargs="*", help="conf/serve.yaml overrides, as for serve.py")
    args = parser.parse_args()
    query = args.query or first_demo_landmark_query()

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("serve", overrides=args.overrides)
    app = build_app(cfg)
    with running_server(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        expect(page.locator("#rerank-select option")).not_to_have_count(0)
        page.set_input_files("#file-input", str(query))
        cards = page.locator(".result-card")
        expect(cards).to_have_count(cfg.top_k, timeout=TIMEOUT_MS)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.result-card img')]"
            ".every((image) => image.complete && image.naturalWidth > 0)"
        )
        cards.first.click()
        expect(page.locator("#matches-caption")).to_contain_text("verified inliers", timeout=TIMEOUT_MS)
        page.wait_for_function("() => document.getElementById('matches-image').naturalWidth > 0")
        page.mouse.move(0, 0)  # no hover effect in the picture
        page.evaluate("window.scrollTo(0, 0)")  # the sticky query panel at the top
        args.output.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.output), full_page=True)
        browser.close()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
