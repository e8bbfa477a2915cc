"""Image jobs end to end on the local stack, written and watched like a frontend does."""

from __future__ import annotations

import base64
import io
import uuid

import pytest
from google.cloud import firestore
from PIL import Image

from local_stack.stack import LocalStack
from tests.fakes.provider_api import FakeProviderAPI
from tests.support.documents import job_document
from tests.support.stack import duplicate_events
from tests.watch import DocWatcher, wait_until

pytestmark = pytest.mark.stack


def new_job(db: firestore.Client, **overrides) -> firestore.DocumentReference:
    fields = {
        "text": "A lighthouse on a cliff at dawn",
        "style_prompt": "watercolor",
        "use_product_composite": False,
        "product_id": None,
        "updated_at": firestore.SERVER_TIMESTAMP,
    }
    job_id, doc = job_document("image_generation_jobs", "user-img", **{**fields, **overrides})
    return db.collection("image_generation_jobs").document(job_id), doc


def put_product(db, bucket, product_id: str, name: str, rgba: tuple[int, int, int, int]) -> None:
    """A product document with a 200x300 single-colour PNG in Storage."""
    buf = io.BytesIO()
    Image.new("RGBA", (200, 300), rgba).save(buf, "PNG")
    path = f"products/{product_id}.png"
    bucket.blob(path).upload_from_string(buf.getvalue(), content_type="image/png")
    db.document(f"products/{product_id}").set({"name": name, "image_path": path})


def test_image_job_completes_with_a_png_in_storage_and_on_the_scene(db, bucket):
    ref, doc = new_job(db)
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(60)
        assert final["status"] == "completed", final.get("error")
        assert watch.statuses() == ["pending", "processing", "completed"]
        progress = watch.values("progress")
        assert progress == sorted(progress) and progress[-1] == 100
    path = final["image_path"]
    assert path == f"users/user-img/images/{doc['job_id']}.png"
    png = bucket.blob(path).download_as_bytes()
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size == (1280, 720)
    scene = db.document(f"storyboards/{doc['storyboard_id']}/scenes/scene-1").get().to_dict()
    assert scene["image_url"] == final["image_url"] and scene["image_path"] == path
    assert final["attempts"] == 1 and final["error"] is None


def test_duplicate_delivery_generates_once(stack: LocalStack, db, bucket):
    ref, doc = new_job(db, text="A red fox in snow")
    with duplicate_events(stack), DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(60)
    assert final["status"] == "completed"
    subject = f"image_generation_jobs/{doc['job_id']}"
    deliveries = wait_until(  # the claiming delivery answers after the job is completed
        lambda: (
            (ds := [d for d in stack.deliveries if d.subject == subject]) and len(ds) >= 2 and ds
        ),
        what="both deliveries answered",
    )
    assert len(deliveries) == 2, "the stack delivered the event twice"
    assert final["attempts"] == 1, "only one delivery claimed the job"
    blobs = list(bucket.list_blobs(prefix=f"users/user-img/images/{doc['job_id']}"))
    assert len(blobs) == 1


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"text": ""}, "text"),
        ({"user_id": "../../etc"}, "user_id"),
        ({"use_product_composite": True, "product_id": None}, "product_id"),
        ({"scene_id": None}, "scene_id"),
        ({"text": 42}, "text"),
    ],
)
def test_bad_documents_fail_cleanly(db, overrides, reason):
    ref, doc = new_job(db, **overrides)
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(30)
    assert final["status"] == "failed"
    assert final["error"]["code"] == "invalid-argument"
    assert reason in final["error"]["message"]


def test_missing_product_fails_with_a_clear_code(db):
    ref, doc = new_job(db, use_product_composite=True, product_id="no-such-product")
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(30)
    assert final["status"] == "failed" and final["error"]["code"] == "product-not-found"


def test_product_composite_puts_the_product_on_the_scene(db, bucket, tmp_path):
    put_product(db, bucket, "red-box", "Red Box", (255, 0, 0, 255))
    ref, doc = new_job(db, use_product_composite=True, product_id="red-box")
    with DocWatcher(ref) as watch:
        ref.set(doc)
        final = watch.wait_terminal(60)
    assert final["status"] == "completed", final.get("error")
    img = Image.open(io.BytesIO(bucket.blob(final["image_path"]).download_as_bytes())).convert(
        "RGB"
    )
    # lower right quadrant holds the (pure red) product
    w, h = img.size
    region = img.crop((w // 2, h // 2, w, h))
    red = sum(1 for p in region.get_flattened_data() if p[0] > 240 and p[1] < 20 and p[2] < 20)
    assert red > 20000
    upper_left = img.crop((0, 0, w // 3, h // 3))
    assert (
        sum(1 for p in upper_left.get_flattened_data() if p[0] > 240 and p[1] < 20 and p[2] < 20)
        < 500
    )


def test_model_based_composite_is_selected_by_the_feature_flag(stack: LocalStack, db, bucket):
    """COMPOSITE_METHOD=model hands the product photo to the image provider as a reference
    (the offline provider places it in the scene it renders)."""
    put_product(db, bucket, "blue-box", "Blue Box", (0, 0, 255, 255))
    with stack.host_params(COMPOSITE_METHOD="model"):
        ref, doc = new_job(db, use_product_composite=True, product_id="blue-box")
        with DocWatcher(ref) as watch:
            ref.set(doc)
            final = watch.wait_terminal(60)
    assert final["status"] == "completed", final.get("error")
    img = Image.open(io.BytesIO(bucket.blob(final["image_path"]).download_as_bytes())).convert(
        "RGB"
    )
    w, h = img.size
    blue = sum(
        1
        for p in img.crop((w // 2, h // 2, w, h)).get_flattened_data()
        if p[2] > 240 and p[0] < 20 and p[1] < 20
    )
    assert blue > 20000


def test_model_based_composite_through_replicate_uses_the_image_conditioned_model(
    stack: LocalStack, provider_api: FakeProviderAPI, db, bucket
):
    """COMPOSITE_METHOD=model with Replicate: one prediction, on REPLICATE_COMPOSITE_MODEL
    (flux-kontext-pro, which takes `input_image`), with the product photo as that input; no
    scene is generated first with the plain text-to-image model only to be thrown away."""
    put_product(db, bucket, "green-box", "Green Box", (0, 200, 0, 255))
    product = bucket.blob("products/green-box.png").download_as_bytes()
    text = f"A kitchen table {uuid.uuid4().hex[:6]}"
    with stack.host_params(COMPOSITE_METHOD="model", IMAGE_PROVIDER="replicate"):
        ref, doc = new_job(db, text=text, use_product_composite=True, product_id="green-box")
        with DocWatcher(ref) as watch:
            ref.set(doc)
            final = watch.wait_terminal(60)
    assert final["status"] == "completed", final.get("error")
    assert final["provider"] == "replicate"
    assert final["model"] == "black-forest-labs/flux-kontext-pro"
    creates = [
        r for r in provider_api.requests_to("/predictions", "POST")
        if text in str((r.json or {}).get("input", {}).get("prompt"))
    ]  # fmt: skip
    assert [r.path for r in creates] == [
        "/v1/models/black-forest-labs/flux-kontext-pro/predictions"
    ], "one generation, on the image-conditioned model"
    sent = creates[0].json["input"]
    prefix = "data:image/png;base64,"
    assert base64.b64decode(sent["input_image"][len(prefix) :]) == product
    assert "Green Box" in sent["prompt"]
    png = Image.open(io.BytesIO(bucket.blob(final["image_path"]).download_as_bytes()))
    assert png.format == "PNG" and png.size == (256, 144)  # what the fake renders for 16:9


def test_model_based_composite_with_a_provider_without_reference_images_is_misconfigured(
    monkeypatch, provider_api: FakeProviderAPI
):
    """In-process: OpenAI's images.generate has no image input, so the job fails before
    anything is generated (instead of a scene without the product)."""
    from core.errors import JobError
    from handlers.image_jobs import ImageJob, generate_scene_image

    for key, value in {
        "IMAGE_PROVIDER": "openai", "OPENAI_API_KEY": "sk-test", "COMPOSITE_METHOD": "model",
        "OPENAI_BASE_URL": f"{provider_api.base_url}/v1",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    before = len(provider_api.requests_to("/v1/images/generations"))
    spec = ImageJob(
        user_id="u", storyboard_id="sb", scene_id="s", text="x",
        use_product_composite=True, product_id="p",
    )  # fmt: skip
    with pytest.raises(JobError) as info:
        generate_scene_image(None, spec)  # type: ignore[arg-type]  # fails before using the job
    assert info.value.code == "misconfigured" and "openai" in info.value.message
    assert len(provider_api.requests_to("/v1/images/generations")) == before
