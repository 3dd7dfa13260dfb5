"""``vdup calibrate`` on small generated media: a tiny model separates unseen copies from negatives."""

import csv
import json

import numpy as np
import pytest

from support.media import make_video
from vdup.calibrate import (
    Table,
    bag_probabilities,
    collect,
    cross_validate,
    fit,
    folds,
    make_background,
    query_scores,
    read_rows,
    reserved_groups,
)
from vdup.cli import main
from vdup.matching.evidence import COLUMN
from vdup.settings import Settings

pytestmark = pytest.mark.slow  # replays generated streams and fits models

SEEDS = range(1, 9)


def copies(seed: int) -> dict[str, tuple[bytes, str]]:
    """kind -> (bytes, family) of one source's copies and look-alikes."""
    return {
        "flip": (make_video(seed, hflip=True, audio_seed=100 + seed), "spatial"),
        "crop_trim": (make_video(seed, crop=0.1, start_s=1.0, duration_s=3.0), "spatial"),
        "fast": (make_video(seed, speed=1.5, duration_s=3.0), "temporal"),
        "silent": (make_video(seed, crop=0.05, with_audio=False), "audio"),
    }


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """A manifest of 8 sources: each original, 4 copies, and a new clip with its soundtrack."""
    root = tmp_path_factory.mktemp("stream")
    rows, minute = [], 0

    def add(uuid, data, dup, of, kind, source, families=""):
        nonlocal minute
        (root / f"{uuid}.mp4").write_bytes(data)
        rows.append(
            {
                "created": f"2024-01-01 {minute // 60:02d}:{minute % 60:02d}:00",
                "uuid": uuid,
                "link": f"{uuid}.mp4",
                "is_duplicate": str(dup),
                "duplicate_for": of,
                "kind": kind,
                "source": source,
                "families": families,
            }
        )
        minute += 1

    for s in SEEDS:
        add(f"orig{s}", make_video(s), False, "", "original", f"s{s}")
    for s in SEEDS:
        for kind, (data, family) in copies(s).items():
            add(f"{kind}{s}", data, True, f"orig{s}", "copy", f"s{s}", family)
        add(f"trend{s}", make_video(50 + s, audio_seed=s), False, "", "same_audio", f"s{s}")
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def table(stream, tmp_path_factory, extractor, cache):
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    return collect(stream, settings, cache, extractor=extractor)


def test_the_replay_labels_each_candidate_by_its_true_root(table):
    assert len(table.queries) == 8 * 6
    labelled = {table.queries[q].uuid for q in table.query[table.label]}
    assert labelled <= {q.uuid for q in table.queries if q.is_duplicate}
    for b in np.flatnonzero(table.label):
        assert table.root[b] == table.queries[table.query[b]].root
    # every copy's original was aligned: retrieval found it
    assert len(labelled) >= 30


def test_a_model_fitted_on_some_sources_separates_copies_of_the_others(table):
    by_group = folds(table, 2)
    train, test = by_group
    model = fit(table, train)
    bags = np.flatnonzero(np.isin(table.query, test))
    p = np.full(len(table.label), np.nan)

    p[bags] = bag_probabilities(table, model, bags)
    pos, neg = p[bags][table.label[bags]], p[bags][~table.label[bags]]
    auc = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auc > 0.9  # a copy of an unseen source ranks above its look-alikes
    s = query_scores(table, p, 0.5, test)
    assert s["precision"] >= 0.9 and s["recall"] >= 0.9 and s["duplicate_for_accuracy"] == 1.0


def test_the_table_round_trips_and_cross_validation_reports_every_family(table, tmp_path):
    table.save(tmp_path / "t.npz")
    again = Table.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(again.x, table.x)
    assert [q.uuid for q in again.queries] == [q.uuid for q in table.queries]
    report = cross_validate(again, k=2, leave_family_out=True)
    assert set(report["families"]) == set(report["lofo"]) == {"spatial", "temporal", "audio"}
    assert 0 < report["threshold"] < 1 and report["cv"]["tp"] + report["cv"]["fn"] == 32


def test_vdup_calibrate_writes_a_model_that_vdup_check_then_uses(
    table, tmp_path, stream, monkeypatch, capsys
):
    table.save(tmp_path / "t.npz")
    model = tmp_path / "model.json"
    assert (
        main(
            [
                "calibrate",
                "--tables",
                str(tmp_path / "t.npz"),
                "--folds",
                "2",
                "--no-lofo",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["queries"] == 48 and info["cv"]["tp"] > 0
    doc = json.loads(model.read_text())
    assert doc["info"]["threshold"] == doc["threshold"]
    monkeypatch.setenv("VDUP_DECISION_MODEL", str(model))
    cfg = Settings(data_dir=tmp_path).decision()
    assert cfg.operating_threshold == doc["threshold"]


def test_rows_without_a_truth_are_not_replayed(tmp_path):
    (tmp_path / "m.csv").write_text(
        "created,uuid,link,is_duplicate,duplicate_for\n"
        "1,a,a.mp4,False,\n2,b,b.mp4,,\n3,c,c.mp4,True,a\n"
    )
    rows = read_rows(tmp_path / "m.csv")
    assert [(q.uuid, q.is_duplicate, q.root, q.group) for q, _ in rows] == [
        ("a", False, "a", "a"),
        ("c", True, "a", "a"),
    ]


def test_a_subset_keeps_its_queries_candidates_and_rows_together(table):
    keep = np.array([i for i, q in enumerate(table.queries) if q.group in ("s1", "s2")])
    sub = table.subset(keep)
    assert [q.uuid for q in sub.queries] == [table.queries[i].uuid for i in keep]
    assert len(sub.label) == int(np.isin(table.query, keep).sum())
    for b in range(len(sub.label)):
        assert sub.queries[sub.query[b]].group in ("s1", "s2")
    assert len(sub.x) == int(np.isin(table.bag, np.flatnonzero(np.isin(table.query, keep))).sum())
    np.testing.assert_array_equal(sub.label, table.label[np.isin(table.query, keep)])


def test_the_background_comes_from_reserved_sources_whose_rows_are_not_queries(
    stream, table, cache, tmp_path, extractor
):
    groups = reserved_groups([stream], every=3)
    assert groups == reserved_groups([stream], every=3) and 0 < len(groups) < 8
    bg = make_background([stream], cache, groups, size=10)
    assert bg.shape[1] == 512 and 0 < len(bg) <= 10
    np.testing.assert_allclose(np.linalg.norm(bg, axis=1), 1.0, atol=1e-3)
    t = collect(
        stream,
        Settings(data_dir=tmp_path),
        cache,
        extractor=extractor,
        background=bg,
        skip_groups=groups,
    )
    assert {q.group for q in t.queries}.isdisjoint(groups)
    assert len(t.queries) == len(table.queries) - 6 * len(groups)
    np.testing.assert_array_equal(t.background, bg)
    levels = t.x[:, COLUMN["background"]]
    assert (levels > 0).all() and (table.x[:, COLUMN["background"]] == 0).all()


def test_the_cached_extractor_answers_from_the_cache_and_falls_back_for_other_bytes(
    table, stream, cache, videos
):
    from pathlib import Path

    from vdup.calibrate import CachedExtractor, _cached
    from vdup.evaluate import resolve_link

    class Fallback:
        calls = 0

        def extract(self, data):
            Fallback.calls += 1
            return "extracted"

        def ready(self):
            return True

        def close(self):
            pass

    cached = CachedExtractor(Fallback(), cache, stream)
    info, link = read_rows(stream)[0]
    got = cached.extract(Path(resolve_link(link, stream)).read_bytes())
    assert got.sha256 == _cached(cache, info.uuid).sha256
    assert np.array_equal(got.frames, _cached(cache, info.uuid).frames)
    assert Fallback.calls == 0
    assert cached.extract(videos["no_audio"]) == "extracted" and Fallback.calls == 1
