"""End to end in headless Chromium: the page uploads (or takes a dropped) demo photo, renders the top 10 with
their scores, shows the verified matches of a clicked result, re-searches when the re-ranking changes, and shows
upload errors.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package; no browser is
downloaded. Run with ``pytest -m browser``.
"""

from __future__ import annotations

import base64
import re

import pytest

from retrieval.search_engine import SearchEngine
from serving.app import create_app
from serving.uploads import UploadLimits
from tests.support.server import CHROMIUM, CHROMIUM_ARGS, running_server
from tests.test_serve import RERANK_CONFIGS, TOP_K, build_tiny_collection, first_landmark_query

# Generous: two slow CPU cores run the server, the searches and the browser together.
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is absent")


@pytest.fixture(scope="module")
def base_url(tiny_demo, tmp_path_factory):
    engine = SearchEngine(build_tiny_collection(tiny_demo, tmp_path_factory.mktemp("collection")))
    app = create_app(
        engine, RERANK_CONFIGS, uploads=UploadLimits(max_bytes=1 << 20), top_k=TOP_K, shortlist=100
    )
    with running_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base_url)
    sync_api.expect(page.locator("#rerank-select option")).to_have_count(len(RERANK_CONFIGS))
    yield page
    context.close()


def test_upload_shows_the_top_10_and_a_click_shows_the_matches(page, tiny_demo):
    expect = sync_api.expect
    query_path, relevant_ids = first_landmark_query(tiny_demo)
    page.set_input_files("#file-input", str(query_path))

    cards = page.locator(".result-card")
    expect(cards).to_have_count(TOP_K, timeout=TIMEOUT_MS)
    expect(page.locator("#status")).to_contain_text("re-ranked by inliers")
    expect(page.locator("#query-preview")).to_be_visible()
    assert [cards.nth(i).get_attribute("data-rank") for i in range(TOP_K)] == [str(i) for i in range(1, 11)]
    scores = [float(text) for text in page.locator(".result-card .score").all_inner_texts()]
    assert len(scores) == TOP_K and scores == sorted(scores, reverse=True)
    # The verdict: a green "same place" badge at the threshold or above, a grey count below it.
    expect(page.locator("#status")).to_contain_text("same place at ≥ 20 inliers")
    expect(page.locator("#status")).to_have_attribute("title", "same place: ≥ 20 inliers (default)")
    badges = page.locator(".inliers")
    expect(badges).to_have_count(TOP_K)
    for i in range(TOP_K):
        text, classes = badges.nth(i).inner_text(), badges.nth(i).get_attribute("class") or ""
        inliers = int(re.search(r"(\d+) inliers", text).group(1))
        assert ("verified" in classes.split()) == (inliers >= 20) == text.startswith("same place · "), text
    assert badges.first.inner_text().startswith("same place · ")
    first_id = cards.first.get_attribute("data-image-id")
    assert first_id is not None and first_id.rsplit("/", 1)[-1] in relevant_ids
    # Every thumbnail was served and decoded.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.result-card img')]"
        ".every((image) => image.complete && image.naturalWidth > 0)"
    )

    cards.first.click()
    expect(cards.first).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator("#matches-caption")).to_contain_text("verified inliers", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => { const image = document.getElementById('matches-image');"
        " return image.complete && image.naturalWidth > 0 && image.naturalHeight > 0; }"
    )
    expect(page.locator("#matches-title")).to_contain_text(first_id)


def test_dropping_a_photo_on_the_page_searches(page, tiny_demo):
    query_path, _ = first_landmark_query(tiny_demo)
    data_transfer = page.evaluate_handle(
        """([name, encoded]) => {
            const bytes = Uint8Array.from(atob(encoded), (character) => character.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            return transfer;
        }""",
        [query_path.name, base64.b64encode(query_path.read_bytes()).decode()],
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": data_transfer})
    sync_api.expect(page.locator(".result-card")).to_have_count(TOP_K, timeout=TIMEOUT_MS)
    sync_api.expect(page.locator("#query-name")).to_have_text(query_path.name)


def test_changing_the_reranking_searches_again(page, tiny_demo):
    expect = sync_api.expect
    query_path, _ = first_landmark_query(tiny_demo)
    page.set_input_files("#file-input", str(query_path))
    expect(page.locator("#status")).to_contain_text("re-ranked by inliers", timeout=TIMEOUT_MS)

    page.select_option("#rerank-select", "none")
    expect(page.locator("#status")).to_contain_text("global similarity only", timeout=TIMEOUT_MS)
    expect(page.locator(".result-card")).to_have_count(TOP_K)
    expect(page.locator("#rerank-description")).to_have_text("Global descriptor similarity only.")
    expect(page.locator(".inliers")).to_have_count(0)  # not computed: no badge, not "0 inliers"
    expect(page.locator("#status")).to_contain_text("score: cosine similarity of global descriptors")


def test_hiding_the_photo_itself_drops_an_indexed_query(page, tiny_demo):
    expect = sync_api.expect
    indexed = sorted((tiny_demo / "index").rglob("*.jpg"))[0]
    page.set_input_files("#file-input", str(indexed))
    cards = page.locator(".result-card")
    expect(cards.first).to_have_attribute(
        "data-image-id", re.compile(re.escape(indexed.stem)), timeout=TIMEOUT_MS
    )
    page.check("#exclude-self")
    expect(cards.first).not_to_have_attribute(
        "data-image-id", re.compile(re.escape(indexed.stem)), timeout=TIMEOUT_MS
    )
    expect(cards).to_have_count(TOP_K)


def test_a_bad_upload_shows_the_servers_message(page, tmp_path):
    expect = sync_api.expect
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not a photo")
    page.set_input_files("#file-input", str(not_an_image))
    expect(page.locator("#error")).to_contain_text(
        "notes.jpg: not an image in a format that can be read", timeout=TIMEOUT_MS
    )
    expect(page.locator(".result-card")).to_have_count(0)
