"""How a live encode fails: the video ends `failed` with `error {code, message}`, and the
playlists already published get ENDLIST so no player waits for segments that never come.

`failing(run)` wraps the trigger's work: a LostClaim stops quietly (someone else owns the
video), a JobError is recorded as it is, anything else through the one crash logger.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import JobError, crashed
from core.lifecycle import now
from core.ownership import LostClaim
from core.quotas import QuotaExceeded
from streaming import document
from streaming.claim import VideoRun


@contextmanager
def failing(run: VideoRun) -> Iterator[None]:
    """Every failure of the block ends the video `failed`; nothing escapes the trigger."""
    try:
        yield
    except LostClaim:
        run.warn("claim lost; another delivery or the sweep owns the video")
    except JobError as err:
        fail_video(run, err)
    except Exception as exc:
        fail_video(run, crashed(exc, "stream", **run.ids))


def fail_video(run: VideoRun, error: JobError) -> None:
    """End the video `failed`; published playlists get ENDLIST so no player waits forever."""
    stream = run.stream
    if stream is not None and stream.segments:
        try:
            stream.write_playlists(ended=True)
        except Exception as exc:
            run.warn("could not end the playlists of a failed stream", error=repr(exc))
    if stream is not None:
        stream.pool.shutdown(wait=False, cancel_futures=True)
    try:
        extra = error.fields() if isinstance(error, QuotaExceeded) else {}
        run.modify(lambda data: {**document.failed_video_fields(data, error, now()), **extra})
    except LostClaim:
        run.warn("failure not recorded: claim lost", errorCode=error.code)
        return
    run.warn("stream failed", errorCode=error.code, error=error.message)
