"""Master, EVENT, VOD and mirror playlists, read back with the `m3u8` parser."""

from __future__ import annotations

from urllib.parse import urljoin

import m3u8
import pytest

from media.hls.ladder import SegmentGrid, plan_ladder
from media.hls.playlists import (
    Bandwidth,
    PreviewPiece,
    Segment,
    StreamPaths,
    build_event_playlist,
    build_master,
    build_preview_playlist,
    build_variant_playlist,
    build_vod_playlist,
    measure_bandwidth,
    parse_media_playlist,
    segment_name,
    swap_grace_s,
    variant_uri,
)

LADDER = plan_ladder(3840, 2160, 30)
TARGET = SegmentGrid(LADDER[0].fps).target_duration


def _segments(durations: list[float], prefix: str = "") -> list[Segment]:
    return [Segment(prefix + segment_name(i), d) for i, d in enumerate(durations)]


def test_master_declares_every_variant_with_required_attributes() -> None:
    text = build_master(LADDER)
    master = m3u8.loads(text)
    assert master.is_variant
    assert "#EXT-X-VERSION:3" in text and "#EXT-X-INDEPENDENT-SEGMENTS" in text
    assert [p.uri for p in master.playlists] == [
        "720p/index.m3u8",
        "1080p/index.m3u8",
        "2160p/index.m3u8",
    ]
    for p, r in zip(master.playlists, LADDER, strict=True):
        info = p.stream_info
        assert info.bandwidth == r.bandwidth_bps
        assert 0 < info.average_bandwidth <= info.bandwidth
        assert info.resolution == (r.width, r.height)
        assert info.codecs == r.codecs
        assert info.frame_rate == pytest.approx(30.0)
    assert master.playlists[2].stream_info.resolution == (3840, 2160)
    assert master.playlists[2].stream_info.codecs == "avc1.640033,mp4a.40.2"


def test_master_uses_measured_bandwidth_when_given_and_custom_uris() -> None:
    measured = {"720p": Bandwidth(peak_bps=2_000_000, average_bps=1_500_000)}
    master = m3u8.loads(
        build_master(LADDER[:2], lambda r: f"https://cdn.test/v1/{r.name}.m3u8", measured=measured)
    )
    first, second = master.playlists
    assert (first.stream_info.bandwidth, first.stream_info.average_bandwidth) == (
        2_000_000,
        1_500_000,
    )
    assert second.stream_info.bandwidth == LADDER[1].bandwidth_bps
    assert second.uri == "https://cdn.test/v1/1080p.m3u8"


def test_master_for_video_without_audio_declares_no_audio_codec() -> None:
    ladder = plan_ladder(1280, 720, 30, has_audio=False)
    master = m3u8.loads(build_master(ladder))
    assert master.playlists[0].stream_info.codecs == "avc1.64001f"


def test_master_needs_a_variant() -> None:
    with pytest.raises(ValueError):
        build_master([])


def test_event_playlist_grows_then_ends() -> None:
    live = _segments([1.001, 1.969, 1.969])
    pl = m3u8.loads(build_event_playlist(live, TARGET, ended=False))
    assert pl.playlist_type == "event"
    assert not pl.is_endlist
    assert pl.media_sequence == 0
    assert pl.is_independent_segments
    assert pl.start is not None and pl.start.time_offset == 0
    assert [s.uri for s in pl.segments] == ["seg_00000.ts", "seg_00001.ts", "seg_00002.ts"]
    assert [s.duration for s in pl.segments] == [1.001, 1.969, 1.969]
    assert all(pl.target_duration >= s.duration for s in pl.segments)

    done = m3u8.loads(build_event_playlist([*live, Segment("seg_00003.ts", 0.5)], TARGET, True))
    assert done.is_endlist and done.playlist_type == "event"
    assert len(done.segments) == 4


def test_event_playlist_without_segments_is_valid_and_not_ended() -> None:
    text = build_event_playlist([], TARGET, ended=False)
    pl = m3u8.loads(text)
    assert pl.target_duration == TARGET and not pl.segments and not pl.is_endlist


def test_target_duration_grows_if_a_segment_is_longer() -> None:
    pl = m3u8.loads(build_event_playlist(_segments([2.0, 2.4]), 2, ended=True))
    assert pl.target_duration == 3
    assert all(s.duration <= pl.target_duration for s in pl.segments)


def test_extinf_has_three_decimals() -> None:
    text = build_vod_playlist(_segments([1.0010001, 2]), TARGET)
    assert "#EXTINF:1.001," in text and "#EXTINF:2.000," in text


def test_vod_playlist() -> None:
    pl = m3u8.loads(build_vod_playlist(_segments([1.0, 2.0, 0.7]), TARGET))
    assert pl.playlist_type == "vod" and pl.is_endlist
    assert sum(s.duration for s in pl.segments) == pytest.approx(3.7)
    with pytest.raises(ValueError):
        build_vod_playlist([], TARGET)


def test_higher_variant_mirrors_the_live_one_until_both_conditions_hold() -> None:
    live = _segments([1.0, 2.0])
    own = _segments([1.0, 2.0])

    # live still encoding: a growing EVENT mirror of the live segments
    while_live = m3u8.loads(
        build_variant_playlist(live, False, None, TARGET, live_rendition="720p")
    )
    assert while_live.playlist_type == "event" and not while_live.is_endlist
    assert [s.uri for s in while_live.segments] == ["../720p/seg_00000.ts", "../720p/seg_00001.ts"]
    assert [s.duration for s in while_live.segments] == [1.0, 2.0]

    # own encode done early: still the mirror, a live playlist may only grow
    early = m3u8.loads(build_variant_playlist(live, False, own, TARGET, live_rendition="720p"))
    assert [s.uri for s in early.segments] == [s.uri for s in while_live.segments]
    assert not early.is_endlist

    # live ended, own not ready: the mirror ends too (players stop reloading it)
    ended = m3u8.loads(build_variant_playlist(live, True, None, TARGET, live_rendition="720p"))
    assert ended.is_endlist and ended.segments[0].uri == "../720p/seg_00000.ts"

    # both, but the live playlist only just ended: players may still be reloading it
    just_ended = m3u8.loads(
        build_variant_playlist(live, True, own, TARGET, live_rendition="720p", live_ended_for_s=1)
    )
    assert just_ended.segments[0].uri == "../720p/seg_00000.ts" and just_ended.is_endlist

    # both, after the grace: the variant's own VOD playlist, same time range
    grace = swap_grace_s(TARGET)
    assert grace >= 3 * TARGET
    swapped = m3u8.loads(
        build_variant_playlist(
            live, True, own, TARGET, live_rendition="720p", live_ended_for_s=grace
        )
    )
    assert swapped.playlist_type == "vod" and swapped.is_endlist
    assert [s.uri for s in swapped.segments] == ["seg_00000.ts", "seg_00001.ts"]
    assert [s.duration for s in swapped.segments] == [s.duration for s in ended.segments]


def test_swap_refuses_a_variant_that_covers_a_different_time_range() -> None:
    live = _segments([1.0, 2.0, 2.0])
    with pytest.raises(ValueError):
        build_variant_playlist(
            live, True, _segments([1.0, 2.0]), TARGET, live_rendition="720p", live_ended_for_s=60
        )
    with pytest.raises(ValueError):
        build_variant_playlist(
            live,
            True,
            _segments([1.0, 2.0, 1.0]),
            TARGET,
            live_rendition="720p",
            live_ended_for_s=60,
        )


def test_relative_uris_resolve_to_the_live_segments_in_storage() -> None:
    """master -> 1080p mirror -> ../720p/seg: the object the live encode uploaded."""
    paths = StreamPaths("vid123")
    base = "https://cdn.test/"
    master_url = base + paths.master
    r1080 = LADDER[1]
    mirror_url = urljoin(master_url, variant_uri(r1080))
    assert mirror_url == base + paths.media_playlist("1080p")
    mirror = m3u8.loads(
        build_variant_playlist(_segments([1.0]), False, None, TARGET, live_rendition="720p")
    )
    assert urljoin(mirror_url, mirror.segments[0].uri) == base + paths.segment("720p", 0)
    assert paths.segment("720p", 0) == "streams/vid123/720p/seg_00000.ts"
    assert paths.master == "streams/vid123/master.m3u8"


def test_measure_bandwidth_from_segment_sizes() -> None:
    segs = [
        Segment("a", 1.0, 250_000),  # 2.0 Mb/s
        Segment("b", 2.0, 1_000_000),  # 4.0 Mb/s
        Segment("c", 0.2, 200_000),  # 8 Mb/s but too short to count as the peak
    ]
    bw = measure_bandwidth(segs)
    assert bw is not None
    assert bw.peak_bps == 4_000_000
    assert bw.average_bps == pytest.approx(1_450_000 * 8 / 3.2, abs=1)
    assert measure_bandwidth([Segment("a", 1.0)]) is None


def test_parse_media_playlist_reads_ffmpeg_output() -> None:
    text = (
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n"
        "#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXTINF:1.968633,\nseg_00007.ts\n#EXTINF:0.967633,\nseg_00008.ts\n"
    )
    parsed = parse_media_playlist(text)
    assert parsed.media_sequence == 7 and parsed.target_duration == 2
    assert parsed.playlist_type == "EVENT" and not parsed.ended
    assert parsed.segments == [Segment("seg_00007.ts", 1.968633), Segment("seg_00008.ts", 0.967633)]
    assert parse_media_playlist(text + "#EXT-X-ENDLIST\n").ended
    with pytest.raises(ValueError):
        parse_media_playlist("")


def test_our_playlists_round_trip_through_our_parser() -> None:
    segs = _segments([1.0, 2.0, 1.5])
    parsed = parse_media_playlist(build_event_playlist(segs, TARGET, ended=True))
    assert parsed.segments == segs and parsed.ended and parsed.target_duration == TARGET


# --------------------------------------------------------------------------- long-form preview


def _piece(index: int, durations: list[float]) -> PreviewPiece:
    return PreviewPiece(
        index, tuple(Segment(f"clip{index:03d}_{n:05d}.ts", d) for n, d in enumerate(durations))
    )


def test_preview_is_an_event_playlist_of_the_clips_in_order() -> None:
    pieces = [_piece(1, [2.0, 0.5]), _piece(0, [2.0, 2.0, 1.0])]
    text = build_preview_playlist(pieces, clip_count=3, target_duration=2)
    pl = m3u8.loads(text)
    assert pl.playlist_type == "event" and pl.media_sequence == 0 and not pl.is_endlist
    assert [s.uri for s in pl.segments] == [
        "clip000_00000.ts",
        "clip000_00001.ts",
        "clip000_00002.ts",
        "clip001_00000.ts",
        "clip001_00001.ts",
    ]
    # each clip's timestamps start again: a discontinuity before every clip but the first
    assert [s.discontinuity for s in pl.segments] == [False, False, False, True, False]
    assert pl.target_duration >= max(round(s.duration) for s in pl.segments)
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1


def test_preview_ends_only_when_every_clip_is_in() -> None:
    one = build_preview_playlist([_piece(0, [2.0])], clip_count=2, target_duration=2)
    both = build_preview_playlist(
        [_piece(0, [2.0]), _piece(1, [2.0])], clip_count=2, target_duration=2
    )
    assert "#EXT-X-ENDLIST" not in one and m3u8.loads(both).is_endlist
    # the earlier version is a prefix of the later one: players only ever see appends
    assert both.startswith(one)


def test_preview_lists_only_the_unbroken_run_of_clips_from_the_first() -> None:
    text = build_preview_playlist(
        [_piece(0, [2.0]), _piece(2, [2.0])], clip_count=3, target_duration=2
    )
    assert [s.uri for s in m3u8.loads(text).segments] == ["clip000_00000.ts"]
    empty = m3u8.loads(build_preview_playlist([_piece(1, [2.0])], 2, 2))
    assert empty.segments == [] and not empty.is_endlist


def test_republishing_a_clip_replaces_it_instead_of_duplicating_it() -> None:
    first = build_preview_playlist([_piece(0, [2.0]), _piece(1, [2.0])], 3, 2)
    again = build_preview_playlist([_piece(0, [2.0]), _piece(1, [2.0]), _piece(1, [2.0])], 3, 2)
    assert again == first


def test_preview_target_duration_covers_a_longer_segment() -> None:
    text = build_preview_playlist([_piece(0, [2.0, 2.4])], 1, target_duration=2)
    pl = m3u8.loads(text)
    assert pl.target_duration == 3 and pl.is_endlist
    assert all(pl.target_duration >= round(s.duration) for s in pl.segments)
    with pytest.raises(ValueError):
        build_preview_playlist([_piece(0, [])], 1, 2)
