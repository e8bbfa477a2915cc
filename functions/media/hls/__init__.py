"""HLS streaming of uploads: ladder planning, playlists, ffmpeg arguments, segment runner.

Pure modules: `ladder` (renditions, segment grid, chunks), `playlists` (master / EVENT /
VOD / mirror playlist text, storage paths), `encode` (ffmpeg argument lists), `publish`
(which objects are uploads, live passes, quality chunks). Runner:
`segmenter.stream_segments` (runs ffmpeg, yields finished segments). The design:
docs/streaming.md.
"""
