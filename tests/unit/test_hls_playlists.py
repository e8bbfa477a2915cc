"""Master, EVENT, VOD and mirror playlists, read back with the `m3u8` parser."""

from __future__ import annotations

from urllib.parse import urljoin

import m3u8
import pytest

from media.hls.ladder import SegmentGrid, plan_ladder
from media.hls.playlists import (
    Bandwidth,
    Segment,
    StreamPaths,
    build_event_playlist,
    build_master,
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
