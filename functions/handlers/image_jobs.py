"""Image jobs: `image_generation_jobs/{job_id}` -> a PNG in Storage and on the scene document.

A frontend writes the job (seed schema: job_id, scene_id, storyboard_id, user_id, text,
style_prompt, use_product_composite, product_id, status="pending") and watches it. The job
ends `completed` with image_url/image_path, and the scene document
`storyboards/{storyboard_id}/scenes/{scene_id}` gets the same URL in the same transaction.
Product compositing (COMPOSITE_METHOD): `pillow` pastes the product photo onto the generated
scene; `model` makes one generation with the product photo as the reference image (a model
that takes one, e.g. REPLICATE_COMPOSITE_MODEL), else the job fails `misconfigured` before
anything is generated. docs/job-status.md. With a provider that calls back, the job records
its prediction and the invocation ends; `finish_from_prediction` goes on from the callback
(docs/webhooks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import config, predictions, storage
from core.clients import db
from core.errors import InvalidInput, JobError
from core.lifecycle import Job, SweptCollection, run_job, validate, work_dir
from core.safe_fetch import fetch_url
from core.vocabulary import Id
from media.images import composite_product, image_size
from providers import registry
from providers.base import GeneratedMedia, ImageRequest
from providers.registry import get_provider

COLLECTION = "image_generation_jobs"
SWEPT = SweptCollection(COLLECTION, redrive=True)
IMAGE_SIZE = (1280, 720)


class ImageJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: Id
    storyboard_id: Id
    scene_id: Id
    text: str = Field(min_length=1, max_length=4000)
    style_prompt: str = Field(default="", max_length=2000)
    use_product_composite: bool = False
    product_id: Id | None = None

    @model_validator(mode="after")
    def _product_needed(self) -> ImageJob:
        if self.use_product_composite and not self.product_id:
            raise ValueError("use_product_composite needs a product_id")
        return self

    @property
    def prompt(self) -> str:
        return (
            f"{self.text.strip()}. {self.style_prompt.strip()}".strip(". ")
            if self.style_prompt
            else self.text.strip()
        )


def handle(document: firestore.DocumentReference, event_id: str) -> None:
    run_job(document, event_id, ImageJob, generate_scene_image)


def generate_scene_image(job: Job, spec: ImageJob) -> None:
    provider = get_provider("image")
    method = _composite_method(spec)
    if method == "model" and not provider.takes_reference_image():
        raise JobError(
            f"COMPOSITE_METHOD=model needs an image provider whose model takes a reference "
            f"image; {provider.name} does not (use replicate with REPLICATE_COMPOSITE_MODEL, "
            f"or COMPOSITE_METHOD=pillow)",
            code="misconfigured",
        )
    job.progress(10, provider=provider.name)
    with work_dir(f"image-{job.id}") as tmp:
        width, height = IMAGE_SIZE
        request = ImageRequest(prompt=spec.prompt, width=width, height=height)
        if method == "model" and spec.product_id:
            product, name = _product_image(spec.product_id, tmp)
            request = replace(
                request,
                prompt=f"{spec.prompt}. Feature {name} naturally in the scene.",
                reference_image=product,
            )
        calling_back = registry.callbacks(provider)
        if calling_back is not None:  # the callback (handlers/provider_webhooks.py) goes on
            predictions.start(
                job, provider.name, "image", registry.webhook_url(),
                lambda hook: calling_back.start_image(request, hook),
            )  # fmt: skip
            return
        _store(job, spec, provider.generate_image(request, tmp), method, tmp)


def finish_from_prediction(
    job: Job, prediction: Mapping[str, Any], slot: str | None = None
) -> None:
    """The rest of `generate_scene_image` once the provider's prediction has ended."""
    spec = validate(ImageJob, job.data)
    record = job.data.get(predictions.FIELD) or {}
    provider = registry.collector(str(record.get("provider") or "replicate"), "image")
    with work_dir(f"image-{job.id}") as tmp:
        _store(job, spec, provider.collect_image(prediction, tmp), _composite_method(spec), tmp)


def _composite_method(spec: ImageJob) -> str:
    method = config.COMPOSITE_METHOD.value if spec.use_product_composite else "none"
    if method not in ("none", "pillow", "model"):
        raise JobError(f"unknown COMPOSITE_METHOD {method!r}", code="misconfigured")
    return str(method)


def _store(job: Job, spec: ImageJob, generated: GeneratedMedia, method: str, tmp: Path) -> None:
    """Composite (pillow), copy into our Storage, complete the job and its scene together."""
    job.progress(60)
    image = generated.path
    if method == "pillow" and spec.product_id:
        product, _ = _product_image(spec.product_id, tmp)
        image = composite_product(image, product, tmp / "composite.png")
        job.progress(80)
    path = f"users/{spec.user_id}/images/{job.id}.png"
    url = storage.upload_file(image, path, "image/png")
    w, h = image_size(image)
    job.progress(95)
    scene = db().document(f"storyboards/{spec.storyboard_id}/scenes/{spec.scene_id}")
    scene_fields = {
        "image_url": url,
        "image_path": path,
        "image_job_id": job.id,
        "updated_at": firestore.SERVER_TIMESTAMP,
    }
    job.complete(
        also=lambda tx: tx.set(scene, scene_fields, merge=True),
        image_url=url,
        image_path=path,
        width=w,
        height=h,
        provider=generated.provider,
        model=generated.model,
    )


def _product_image(product_id: str, tmp: Path) -> tuple[Path, str]:
    """The product's photo (downloaded into `tmp`) and its name."""
    product = db().document(f"products/{product_id}").get()
    if not product.exists:
        raise InvalidInput(f"product {product_id} does not exist", code="product-not-found")
    data = product.to_dict() or {}
    product_file = tmp / "product.png"
    if data.get("image_path"):
        storage.download_to(str(data["image_path"]), product_file)
    elif data.get("image_url"):
        fetch_url(str(data["image_url"]), product_file)
    else:
        raise InvalidInput(f"product {product_id} has no image", code="product-not-found")
    return product_file, str(data.get("name") or "the product")
