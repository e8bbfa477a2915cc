"""The reference web app (web/) in a real browser, through the Firebase web SDK only.

Headless Chromium (/usr/bin/chromium, driven by Playwright) opens the app the local stack
serves. Everything the page does goes through the web SDK: Auth emulator sign-in,
Firestore writes checked by firestore.rules on the official emulator, onSnapshot
listeners, uploadBytesResumable, callables. The tests read what the page shows and what
the player plays, and check the backend's side with the Admin SDK.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from firebase_admin import auth as admin_auth
from google.cloud import firestore

from core import ledger
from devtools import ledger_audit
from devtools.media_factory import make_clip
from local_stack.stack import LocalStack
from tests.conftest import admin_app

CHROMIUM = Path("/usr/bin/chromium")
OUT = Path(__file__).resolve().parents[2] / ".local" / "e2e"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.stack,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (scripts/setup.sh)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield b
        b.close()


@pytest.fixture()
def page(stack: LocalStack, browser: Any) -> Iterator[Any]:
    if stack.web is None:
        pytest.skip("web/dist is not built (scripts/setup.sh builds it)")
    if not stack.firestore.serves_web_sdk:
        pytest.skip("the web SDK needs the official Firestore emulator")
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))

    # Chromium logs every non-2xx response; a refused callable answers 429 on purpose
    # (resource-exhausted), and the Firestore SDK's WebChannel is answered 400 when the
    # emulator ends a stream session the SDK then re-opens (seen once, CI under load);
    # anything else is an error of the page.
    def console(m: Any) -> None:
        url = str((m.location or {}).get("url") or "")
        transport = "status of 400" in m.text and "google.firestore.v1.Firestore/" in url
        if m.type == "error" and "status of 429" not in m.text and not transport:
            errors.append(f"{m.text} ({url})")

    pg.on("console", console)
    pg.goto(stack.web.url)
    pg.wait_for_selector("body[data-ready=true]", timeout=60_000)
    yield pg
    OUT.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(OUT / "web-app-last.png"), full_page=True)
    context.close()
    assert errors == [], errors


def signed_in_uid(pg: Any) -> str:
    pg.wait_for_function("document.querySelector('#who').dataset.uid", timeout=30_000)
    return str(pg.eval_on_selector("#who", "e => e.dataset.uid"))


def sign_in_anonymously(pg: Any) -> str:
    pg.click("#sign-in-anonymous")
    return signed_in_uid(pg)


def test_a_signed_in_user_makes_an_image_and_sees_it_completed(
    stack: LocalStack, db: firestore.Client, page: Any
) -> None:
    uid = sign_in_anonymously(page)
    page.fill("#image-prompt", "A red kite over green hills")
    page.click("#create-image")
    card = page.locator(".job[data-kind=image]").first
    card.locator("xpath=self::*[@data-status='completed']").wait_for(timeout=120_000)
    job_id = card.get_attribute("data-job-id")
    img = card.locator("img.result")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=img.element_handle(), timeout=30_000
    )
    assert "completed" in card.inner_text()
    # the backend's view of the same document
    doc = db.collection("image_generation_jobs").document(job_id).get().to_dict()
    assert doc["status"] == "completed" and doc["user_id"] == uid
    assert doc["text"] == "A red kite over green hills"
    assert img.get_attribute("src") == doc["image_url"]


def test_b_a_job_for_another_user_is_refused_by_the_rules_and_never_processed(
    stack: LocalStack, db: firestore.Client, page: Any
) -> None:
    sign_in_anonymously(page)
    page.click("#rules-check")
    message = page.locator("#jobs-message[data-kind=rules-result]")
    message.wait_for(timeout=30_000)
    assert "permission-denied" in message.inner_text()
    job_id = message.get_attribute("data-job-id")
    assert job_id
    assert not db.collection("image_generation_jobs").document(job_id).get().exists
    subject = f"image_generation_jobs/{job_id}"
    assert [d for d in stack.deliveries if d.subject == subject] == []


def test_c_an_upload_plays_and_upgrades_to_real_1080p_at_the_same_position(
    stack: LocalStack, db: firestore.Client, page: Any, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "web-upload.mp4", duration=8.0, width=1920, height=1080, crf=30)
    uid = sign_in_anonymously(page)
    page.set_input_files("#video-file", str(clip))
    page.click("#upload-video")
    page.wait_for_selector("#upload-progress[data-done=true]", timeout=60_000)
    page.wait_for_selector(
        "#video-status[data-status=ready], #video-status[data-status=complete]", timeout=60_000
    )
    video_id = page.eval_on_selector("#video-status", "e => e.dataset.videoId")
    # the object the web SDK uploaded is the one the backend streams, for this user
    video = db.collection("videos").document(video_id).get().to_dict()
    assert video["userId"] == uid
    assert video["source"]["path"] == f"uploads/{uid}/{video_id}.mp4"

    # it plays
    page.wait_for_function(
        "() => { const v = document.querySelector('#player'); return v.currentTime > 0.3 && v.videoHeight > 0; }",
        timeout=60_000,
    )
    assert_menu_matches_qualities(page)
    # pause where the viewer is; the upgrade must come back to this position
    position, sessions = page.evaluate(
        "() => { const v = document.querySelector('#player'); v.pause();"
        " return [v.currentTime, Number(document.querySelector('#player-status').dataset.sessions)]; }"
    )

    # the background 1080p becomes ready: the player starts a new session by itself
    page.wait_for_selector(
        "#qualities li[data-quality='1080p'][data-status=ready]", timeout=240_000
    )
    page.wait_for_function(
        "() => { const s = document.querySelector('#player-status').dataset;"
        " return Number(s.sessions) >= 2 && s.level === '1080p' && s.picture === '1920x1080'; }",
        timeout=60_000,
    )
    status = page.eval_on_selector("#player-status", "e => ({...e.dataset})")
    if sessions == 1:  # upgraded while paused: exactly where the viewer was
        assert float(status["resumedAt"]) == pytest.approx(position, abs=0.05)
    else:  # 1080p was ready before the pause: upgraded while playing, where it was then
        assert float(status.get("resumedAt", "0")) <= position + 0.05
    assert_menu_matches_qualities(page)
    assert "(processing)" not in page.inner_text("#quality-menu button[data-quality='1080p']")

    # and it goes on playing real 1080p frames from there
    page.evaluate("() => document.querySelector('#player').play()")
    page.wait_for_function(
        f"() => document.querySelector('#player').currentTime > {position + 1.0}", timeout=60_000
    )
    playing = page.evaluate(
        "() => { const v = document.querySelector('#player');"
        " return {w: v.videoWidth, h: v.videoHeight, t: v.currentTime}; }"
    )
    assert (playing["w"], playing["h"]) == (1920, 1080)
    assert page.eval_on_selector("#player-status", "e => e.dataset.level") == "1080p"
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "web-app-1080p.png"), full_page=True)


MENU_MATCHES_QUALITIES = """() => {
  const statuses = Object.fromEntries([...document.querySelectorAll('#qualities li')]
    .map(li => [li.dataset.quality, li.dataset.status]));
  const buttons = [...document.querySelectorAll('#quality-menu button[data-quality]')];
  return buttons.length > 0 && buttons.every(b =>
    b.textContent.includes('processing') === (statuses[b.dataset.quality] !== 'ready'));
}"""


def assert_menu_matches_qualities(page: Any) -> None:
    """A quality whose document status is not `ready` is labelled as processing (waits for
    the menu to show the latest document: a new session re-renders it once loaded)."""
    page.wait_for_function(MENU_MATCHES_QUALITIES, timeout=30_000)


def test_d_a_creation_without_enough_tokens_is_refused_on_the_page_and_costs_nothing(
    stack: LocalStack, db: firestore.Client, page: Any
) -> None:
    email, password = f"poor-{uuid.uuid4().hex[:8]}@example.com", "s3cret-pass"
    user = admin_auth.create_user(email=email, password=password, app=admin_app(stack))
    ledger.grant(user.uid, 10, reason="test")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#sign-in-email")
    assert signed_in_uid(page) == user.uid
    page.wait_for_selector("#balance[data-balance='10']", timeout=30_000)

    page.select_option("#creation-duration", "4")
    page.click("#create-creation")
    message = page.locator("#creation-message.error")
    message.wait_for(timeout=30_000)
    assert message.inner_text() == (
        "Not enough tokens: this creation costs 40 tokens and your balance is 10."
    )
    assert message.get_attribute("data-code") == "functions/resource-exhausted"
    assert page.inner_text("#balance") == "Balance: 10 tokens"
    # nothing was charged or created
    assert ledger_audit.audit(user.uid) == (10, 10)
    assert [e["type"] for e in ledger_audit.entries(user.uid)] == ["grant"]
    assert [
        d.id
        for d in db.collection("creations")
        .where(filter=firestore.FieldFilter("userId", "==", user.uid))
        .stream()
    ] == []


def test_e_the_seek_bar_previews_the_storyboard_and_the_download_link_appears(
    stack: LocalStack, db: firestore.Client, page: Any, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "web-scrub.mp4", duration=6.0, width=1280, height=720, crf=30)
    sign_in_anonymously(page)
    page.set_input_files("#video-file", str(clip))
    page.click("#upload-video")
    # the storyboard arrives in the background: the seek bar shows once its VTT is loaded
    page.wait_for_selector(".storyboard[data-cues='3']", timeout=240_000)
    video_id = page.eval_on_selector("#video-status", "e => e.dataset.videoId")
    doc = db.collection("videos").document(video_id).get().to_dict()
    assert doc["storyboard"]["status"] == "ready"

    # hovering at 3/4 of the bar (4.5 s of 6 s) shows the tile of the cue 4-6 s
    box = page.locator("#seek-bar").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    page.wait_for_selector("#storyboard-preview:not([hidden])", timeout=10_000)
    preview = page.eval_on_selector(
        "#storyboard-preview",
        "e => ({...e.dataset, bg: getComputedStyle(e).backgroundImage,"
        " pos: getComputedStyle(e).backgroundPosition})",
    )
    assert preview["xywh"] == "320,0,160,90"
    assert preview["image"].endswith(f"/streams/{video_id}/storyboard/sprite_000.jpg")
    assert preview["pos"] == "-320px 0px" and "sprite_000.jpg" in preview["bg"]
    loaded = page.evaluate(
        "url => new Promise(r => { const i = new Image(); i.onload = () => r([i.naturalWidth,"
        " i.naturalHeight]); i.onerror = () => r(null); i.src = url; })",
        preview["image"],
    )
    assert loaded == [1600, 900]

    # the download link appears once the MP4 exists, and serves it
    page.wait_for_selector("#download-link:not([hidden])", timeout=240_000)
    href = page.eval_on_selector("#download-link", "e => e.href")
    assert href.endswith(f"/streams/{video_id}/download.mp4")
    assert "720p" in page.inner_text("#download-link")
    head = page.evaluate(
        "url => fetch(url).then(r => [r.status, r.headers.get('content-type')])", href
    )
    assert head == [200, "video/mp4"]
