"""Progressive HLS streaming of uploads: `uploads/{uid}/{videoId}.{ext}` becomes a stream
that plays about a second after the upload, then gains its higher qualities.

    document.py        the video document `videos/{videoId}`: states and transitions (pure)
    claim.py           claiming the document; VideoRun, the claim every live write goes through
    live.py            the live publisher: segments and playlists as they are encoded
    start.py           media playlists, then the master
    passes.py          encode passes of the live rendition, and finishing it
    failure.py         how a live encode fails (the video `failed`, playlists ended)
    trigger.py         the Storage finalize trigger
    continuation.py    `streamcontinue`: the next pass of a long upload
    qualities.py       `generatequality`: background qualities, chunks and the swap
    quality_levels.py  writes of `qualityLevels`, and `ready` -> `complete`
    stalled.py         the sweep's checks of qualities and assets whose task was lost
    assets.py          `streamassets`: poster, storyboard, MP4 download, after `ready`
    poster.py, storyboard.py, download.py   what each of those tasks makes
    tasks.py           the streaming tasks and their ids

The media decisions (ladder, grid, playlists, encode arguments) are pure, in media/hls/.
The design: docs/streaming.md.
"""
