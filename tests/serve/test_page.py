"""The web page in a real browser (Debian's chromium, driven by Playwright): type a text or choose an image, and the
page shows exactly what the API answers, labels and probabilities, beside the model's card. A screenshot of each
page is saved (in `$HEADSTART_SCREENSHOTS` when set, else in the test's temporary folder)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import digit_images
from tests.serve.conftest import live_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOP_K = 5

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium); .ci/run installs it"
)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def shown_rows(page) -> list[tuple[str, str, str]]:
    script = "els => els.map(e => [e.dataset.label, e.dataset.probability, e.querySelector('.pct').textContent])"
    return page.eval_on_selector_all("#predictions .row", script)


def check_page_equals_api(page, api_rows: list[dict], card: dict) -> None:
    rows = shown_rows(page)
    want = api_rows[0]["label_top"]
    assert [r[0] for r in rows] == [t["label"] for t in want]
    assert [float(r[1]) for r in rows] == [t["probability"] for t in want]  # the very numbers the API gave
    for (_, _, pct), t in zip(rows, want):
        assert abs(float(pct.rstrip("%")) - 100 * t["probability"]) <= 0.05 + 1e-9
    labels = page.eval_on_selector_all("#card-body .labels span", "els => els.map(e => e.textContent)")
    assert labels == card["tasks"]["label"]["classes"]
    assert card["backbone"]["spec"] in page.inner_text("#card-body")


def screenshot(page, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("HEADSTART_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:4] == b"\x89PNG"
    return path


def test_text_page_shows_what_the_api_answers(browser, text_model_dir, tmp_path):
    text = "the market shares fell and the bank profit rose"
    with live_server(text_model_dir, name="news") as url:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('title').textContent === 'news'")
        page.fill("#top-k", str(TOP_K))
        page.fill("#text", text)
        page.click("#submit")
        page.wait_for_selector("#predictions .row")
        api = httpx.post(f"{url}/predict", json={"texts": [text], "top_k": TOP_K}).json()["predictions"]
        card = httpx.get(f"{url}/card").json()
        check_page_equals_api(page, api, card)
        assert len(shown_rows(page)) == 2  # two classes, though five were asked for
        screenshot(page, tmp_path, "serve-text.png")
        page.close()


def test_image_page_shows_what_the_api_answers(browser, image_model_dir, tmp_path):
    from PIL import Image

    image = digit_images(1, seed=5)[0][7]
    path = tmp_path / "seven.png"
    Image.fromarray(image).resize((64, 64), Image.NEAREST).save(path)
    with live_server(image_model_dir, name="digits") as url:
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('title').textContent === 'digits'")
        assert page.is_hidden("#text-input") and page.is_visible("#drop")
        page.fill("#top-k", str(TOP_K))
        page.set_input_files("#file", str(path))
        page.wait_for_selector("#preview img")
        page.click("#submit")
        page.wait_for_selector("#predictions .row")
        buf = io.BytesIO(path.read_bytes())
        files = [("files", ("seven.png", buf, "image/png"))]
        api = httpx.post(f"{url}/predict", files=files, data={"top_k": str(TOP_K)}).json()["predictions"]
        card = httpx.get(f"{url}/card").json()
        check_page_equals_api(page, api, card)
        assert len(shown_rows(page)) == TOP_K and page.inner_text(".item-name") == "seven.png"
        screenshot(page, tmp_path, "serve-image.png")
        page.close()


def test_the_docs_page_lists_the_api_offline(browser, text_model_dir):
    with live_server(text_model_dir, name="news") as url:
        page = browser.new_page()
        outside = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(url) else None)
        page.goto(url + "/docs")
        page.wait_for_selector("details.op")
        assert "/v2/models/{name}/infer" in page.inner_text("#ops")
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('title').textContent === 'news'")
        assert outside == [], outside  # nothing from a CDN or anywhere else
        page.close()
