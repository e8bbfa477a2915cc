"""Still-image operations with Pillow (pure: file in, file out, no Firebase)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageFilter


def composite_product(
    scene: Path, product: Path, out: Path, *, height_ratio: float = 0.38, margin_ratio: float = 0.05
) -> Path:
    """Place the product image in the lower right of the scene with a soft shadow.

    The product keeps its aspect ratio and transparency (a product photo without alpha is
    used as is); its height is `height_ratio` of the scene's.
    """
    with Image.open(scene) as scene_img, Image.open(product) as product_img:
        base = scene_img.convert("RGBA")
        item = product_img.convert("RGBA")
        target_h = max(1, int(base.height * height_ratio))
        target_w = max(1, int(item.width * target_h / item.height))
        if target_w > base.width * 0.6:
            target_w = int(base.width * 0.6)
            target_h = max(1, int(item.height * target_w / item.width))
        item = item.resize((target_w, target_h), Image.Resampling.LANCZOS)
        margin = int(min(base.width, base.height) * margin_ratio)
        x = base.width - target_w - margin
        y = base.height - target_h - margin
        shadow = Image.new("RGBA", base.size, (0, 0, 0, 0))
        alpha = item.split()[3].point(lambda a: int(a * 0.45))
        shadow.paste((0, 0, 0, 255), (x + margin // 4, y + margin // 4), alpha)
        shadow = shadow.filter(ImageFilter.GaussianBlur(max(1, margin // 3)))
        base = Image.alpha_composite(base, shadow)
        base.alpha_composite(item, (x, y))
        base.convert("RGB").save(out, "PNG")
    return out


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size
