"""The training-set generator (tools/trainset) without AugLy or Pillow: numpy edits, chain
sampling, exclusive footage, group planning, resumable runs and the manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import numpy as np
import pytest

from support.media import make_video
from tools.trainset import generate
from tools.trainset.edits import EDITS, FAMILIES, FAMILY_NAMES, pitch_shift_audio, stretch
from tools.trainset.media import AUDIO_RATE, Clip, load
from tools.trainset.plan import GAP_S, Footage, Planner, Source, plan_groups, sources_from_manifest


def _clip(n: int = 12, h: int = 48, w: int = 64, seed: int = 0, audio: bool = True) -> Clip:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    a = (0.3 * np.sin(np.arange(int(n / 12 * AUDIO_RATE)) * 0.05)).astype(np.float32)
    return Clip(frames, 12.0, a if audio else None)


SAME_LENGTH = {
    "crop",
    "pad",
    "scale",
    "rotate",
    "rotate90",
    "hflip",
    "vflip",
    "perspective_shake",
    "aspect_ratio",
    "reframe_916",
    "overlay_dots",
    "overlay_shapes",
    "overlay_onto_video",
    "pip_in_other",
    "pip_other_in",
    "blend",
    "hstack",
    "vstack",
    "pixelization",
    "brightness",
    "contrast",
    "saturation",
    "grayscale",
    "color_jitter",
    "blur",
    "sharpen",
    "noise",
    "encoding_quality",
}


@pytest.mark.parametrize("name", sorted(SAME_LENGTH))
def test_visual_edit_changes_pixels_and_keeps_frame_count(name):
    clip, partner = _clip(), _clip(seed=1, h=40, w=40)
    out, params = EDITS[name].fn(clip, np.random.default_rng(3), partner)
    assert out.frames.dtype == np.uint8 and out.frames.ndim == 4
    assert len(out.frames) == len(clip.frames)
    assert out.frames.shape[1:] != clip.frames.shape[1:] or not np.array_equal(
        out.frames, clip.frames
    )
    json.dumps(params)


def test_every_edit_has_one_family_and_numpy_ones_need_no_pil():
    assert set(FAMILIES) == set(EDITS) and set(FAMILIES.values()) <= set(FAMILY_NAMES)
    assert set(FAMILIES.values()) == set(FAMILY_NAMES)
    for name in EDITS:
        assert FAMILIES[name] == EDITS[name].family


def test_temporal_edits_change_duration_as_stated():
    clip = _clip(n=24)
    rng = np.random.default_rng(0)
    fast, p = EDITS["speed"].fn(clip, rng, None)
    assert len(fast.frames) == pytest.approx(24 / p["factor"], abs=1)
    assert fast.audio.size == pytest.approx(clip.audio.size / p["factor"], rel=0.01)
    looped, p = EDITS["loop"].fn(clip, rng, None)
    assert len(looped.frames) == 24 * p["times"]
    inserted, p = EDITS["insert_in_footage"].fn(clip, rng, _clip(seed=5))
    assert inserted.duration == pytest.approx(clip.duration + p["before_s"] + p["after_s"], abs=0.2)
    assert inserted.audio.size == pytest.approx(inserted.duration * AUDIO_RATE, rel=0.02)


def test_audio_edits_keep_length_and_change_sound():
    a = (0.3 * np.sin(np.arange(AUDIO_RATE) * 2 * np.pi * 440 / AUDIO_RATE)).astype(np.float32)
    shifted = pitch_shift_audio(a, 5)
    assert shifted.size == a.size and not np.allclose(shifted, a)
    assert stretch(a, 2.0).size == 2 * a.size
    spec = np.abs(np.fft.rfft(shifted))
    assert np.argmax(spec) / np.argmax(np.abs(np.fft.rfft(a))) == pytest.approx(
        2 ** (5 / 12), rel=0.05
    )
    clip = _clip()
    for name in ("audio_noise", "volume"):
        out, _ = EDITS[name].fn(clip, np.random.default_rng(0), None)
        assert out.audio.size == clip.audio.size and not np.allclose(out.audio, clip.audio)
    assert EDITS["audio_remove"].fn(clip, None, None)[0].audio is None
    replaced, _ = EDITS["audio_replace"].fn(clip, None, _clip(n=5, seed=2))
    assert replaced.audio.size == clip.audio.size


def test_footage_pieces_never_overlap_and_keep_the_gap():
    f = Footage([Source("s", "x", 60.0, True)])
    rng = np.random.default_rng(0)
    got = [g for g in (f.take("s", 5.0, rng) for _ in range(20)) if g]
    assert len(got) >= 5 and f.take("s", 5.0, rng) is None
    spans = sorted((a, a + d) for a, d in got)
    assert all(b0 + GAP_S <= a1 + 1e-6 for (_, b0), (a1, _) in zip(spans, spans[1:]))


def test_chains_use_distinct_families_and_at_most_one_partner():
    planner = Planner(
        [Source("a", "x", 30, True), Source("b", "y", 30, True)],
        Footage([Source("a", "x", 30, True), Source("b", "y", 30, True)]),
        0,
    )
    rng = np.random.default_rng(0)
    for _ in range(200):
        chain = planner.sample_chain(rng, 3, has_audio=False)
        fams = [FAMILIES[c] for c in chain]
        assert len(set(fams)) == len(fams) and 1 <= len(chain) <= 3
        assert sum(EDITS[c].needs is not None for c in chain) <= 1
        assert all(c == "audio_replace" or FAMILIES[c] != "audio" for c in chain)


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sources")
    for seed in range(4):
        (d / f"src{seed}.mp4").write_bytes(
            make_video(seed + 10, duration_s=40.0, width=96, height=64, fps=8)
        )
    return d


def _run(out: Path, src: Path, groups: int) -> None:
    generate.main(
        ["--sources", str(src), "--out", str(out), "--groups", str(groups), "--augly-share", "0"]
    )


def _rows(out: Path) -> list[dict]:
    generate.main(["assemble", "--out", str(out)])
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_generated_groups_form_a_valid_stream(tmp_path, source_dir):
    out = tmp_path / "gen"
    _run(out, source_dir, 2)
    rows = _rows(out)
    assert list(rows[0]) == generate.MANIFEST_COLUMNS
    by_uuid = {r["uuid"]: r for r in rows}
    pos = {r["uuid"]: i for i, r in enumerate(rows)}
    assert sorted(r["created"] for r in rows) == [r["created"] for r in rows]
    assert sum(r["kind"] == "original" for r in rows) == 2
    for r in rows:
        assert (out / r["link"]).exists()
        if r["is_duplicate"] == "True":
            root = by_uuid[r["duplicate_for"]]
            assert root["kind"] == "original" and pos[root["uuid"]] < pos[r["uuid"]]
            assert root["source"] == r["source"]
        else:
            assert r["duplicate_for"] == ""
        assert r["families"] == ";".join(dict.fromkeys(FAMILIES[c] for c in json.loads(r["chain"])))
    for m in generate.load_done(out).values():
        items = {it["id"]: it for it in m["items"]}
        order = m["seq"]
        for it in items.values():
            if it["kind"] == "copy_of_copy":
                assert order.index(it["parent"]) < order.index(it["id"])
                assert it["root"] == "orig"
    with av.open(str(out / rows[0]["link"])) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert max(c.streams.video[0].width, c.streams.video[0].height) <= 640


def test_a_rerun_skips_done_groups_and_more_groups_extend(tmp_path, source_dir):
    out = tmp_path / "gen"
    _run(out, source_dir, 1)
    marker = next((out / "groups").glob("*.json"))
    stamp = marker.stat().st_mtime_ns
    (out / "videos" / "leftover.mp4.tmp").write_bytes(b"x")
    _run(out, source_dir, 1)
    assert marker.stat().st_mtime_ns == stamp
    assert not (out / "videos" / "leftover.mp4.tmp").exists()
    _run(out, source_dir, 2)
    done = generate.load_done(out)
    assert len(done) == 2
    pieces = [p for m in done.values() for p in m["footage"]]
    for i, (s, a, b) in enumerate(pieces):
        for s2, a2, b2 in pieces[i + 1 :]:
            assert s != s2 or b + GAP_S <= a2 + 1e-6 or b2 + GAP_S <= a + 1e-6


def test_still_takes_are_two_recordings_and_copies_name_the_first(tmp_path, source_dir):
    from tools.trainset.overlays import thumb_similarity

    out = tmp_path / "gen"
    generate.main(
        [
            "--sources",
            str(source_dir),
            "--out",
            str(out),
            "--groups",
            "2",
            "--augly-share",
            "0",
            "--still-takes",
            "1",
            "--still-same-length",
            "--still-fps",
            "10",
        ]
    )
    rows = _rows(out)
    by_uuid = {r["uuid"]: r for r in rows}
    takes = [r for r in rows if r["kind"] == "still_take"]
    copies = [r for r in rows if r["kind"] == "still_copy"]
    assert len(takes) == 4 and copies
    assert all(r["is_duplicate"] == "False" and not r["duplicate_for"] for r in takes)
    for r in copies:
        root = by_uuid[r["duplicate_for"]]
        assert r["is_duplicate"] == "True" and root["kind"] == "still_take"
        assert rows.index(root) < rows.index(r)
    for m in generate.load_done(out).values():
        first, second = sorted(
            (it for it in m["items"] if it["kind"] == "still_take"), key=lambda it: "other" in it
        )
        a, b = (load(out / "videos" / f"{it['uuid']}.mp4").frames for it in (first, second))
        assert np.abs(np.diff(a[:, ::4, ::4].astype(int), axis=0)).mean() < 12  # near-still
        assert thumb_similarity(a[0], b[0]) < generate.STILL_TAKES_ALIKE + 0.05
        assert len(a) == len(b) == int(first["still_s"] * 10)  # --still-same-length, 10 fps


def test_planning_is_deterministic_and_stops_when_footage_runs_out(source_dir):
    from tools.trainset.plan import sources_from_dir

    srcs = sources_from_dir(source_dir)
    a = plan_groups(srcs, {}, 50, seed=1, augly_share=0)
    b = plan_groups(srcs, {}, 50, seed=1, augly_share=0)
    assert [p["items"] for p in a] == [p["items"] for p in b]
    assert 0 < len(a) < 50


def test_dev_manifest_gives_only_non_copies(tmp_path):
    (tmp_path / "videos").mkdir()
    rows = []
    for i, kind in enumerate(["original", "copy", "distractor", "exact", "same_audio"]):
        u = f"{i:08d}-0000-4000-8000-000000000000"
        (tmp_path / "videos" / f"{u}.mp4").write_bytes(
            make_video(i, duration_s=1.0, width=64, height=48)
        )
        rows.append(
            {
                "created": f"2024-01-01 00:0{i}:00",
                "uuid": u,
                "link": f"videos/{u}.mp4",
                "is_duplicate": str(kind in ("copy", "exact")),
                "duplicate_for": "",
                "is_hard": "False",
                "kind": kind,
                "chain": "[]",
            }
        )
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    got = sources_from_manifest(tmp_path / "manifest.csv")
    assert len(got) == 3 and all(s.id.startswith("dev-") for s in got)
    with pytest.raises(SystemExit):
        from tools.trainset.plan import sources_from_dir

        sources_from_dir(tmp_path / "videos")


def test_load_cuts_segments_and_normalises(tmp_path):
    p = tmp_path / "a.mp4"
    p.write_bytes(make_video(3, duration_s=4.0, width=320, height=240, fps=15))
    clip = load(p, 1.0, 2.0, max_side=160)
    assert clip.size == (120, 160) and abs(clip.duration - 2.0) < 0.15
    assert clip.audio is not None and abs(clip.audio.size / AUDIO_RATE - clip.duration) < 0.1
