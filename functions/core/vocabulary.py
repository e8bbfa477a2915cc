"""Shared vocabulary: ids, aspect ratios, resolutions, URL limits and scene numbers.

One id rule for users, jobs, videos, scenes, products and creations: 1-128 letters, digits,
`_` or `-` (a Firestore document id, a Storage path segment and part of a Cloud Tasks task
id, and never a path traversal). docs/job-status.md lists the fields that carry them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal, TypeGuard, get_args

from pydantic import Field

ID_CHARS = r"[A-Za-z0-9_-]{1,128}"
ID_PATTERN = rf"^{ID_CHARS}$"
ID_RE = re.compile(ID_PATTERN)

MAX_URL_LENGTH = 4096
"""Longest URL a job document may carry (seed images, clips, music)."""

AspectRatio = Literal["16:9", "9:16", "1:1"]
ASPECT_RATIOS: tuple[AspectRatio, ...] = get_args(AspectRatio)
Resolution = Literal["480p", "720p", "1080p"]
RESOLUTIONS: tuple[Resolution, ...] = get_args(Resolution)

# pydantic field types
Id = Annotated[str, Field(pattern=ID_PATTERN)]
Url = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]
SceneNumber = Annotated[int, Field(ge=0, le=100_000, strict=True)]


def is_id(value: object) -> TypeGuard[str]:
    """True for a string that follows the id rule."""
    return isinstance(value, str) and ID_RE.match(value) is not None


def require_unique_scene_numbers(numbers: Sequence[int], field: str) -> None:
    """ValueError (for a pydantic validator) when two items of `field` share a scene_number."""
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"{field}: scene_number values must be unique")
