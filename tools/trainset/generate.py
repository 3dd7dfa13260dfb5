"""Generate labelled copy/not-copy videos for training the copy-detection decision model.

    ../trainset/venv/bin/python tools/trainset/generate.py \\
        --dev-manifest ../shared/bench/dev/manifest.csv --sources ../trainset/sources \\
        --out ../trainset/gen --groups 400 --workers 1 --nice 10
    ../trainset/venv/bin/python tools/trainset/generate.py assemble --out ../trainset/gen

Why this shape: thousands of clips take hours on two cores, so the work is cut into source
groups (an original, its copies and its hard negatives) that finish independently. A group's
done-marker ``groups/<group>.json`` is written atomically after all its videos, so killing the
run loses only the groups in flight, and a rerun plans only what is missing (with more
sources or a larger --groups it adds groups). ``assemble`` turns the markers into one
Yappy-format manifest whose ``created`` order interleaves the groups. Tooling only: it never
imports vdup.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
import traceback
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.trainset.edits import FAMILIES, apply_chain
from tools.trainset.media import AUDIO_RATE, Clip, encode, fit_size, load, write_atomic
from tools.trainset.plan import (
    Source,
    StillTakes,
    footage_of,
    plan_groups,
    sources_from_dir,
    sources_from_manifest,
    stable_hash,
)

MANIFEST_COLUMNS = [
    "created",
    "uuid",
    "link",
    "is_duplicate",
    "duplicate_for",
    "is_hard",
    "kind",
    "chain",
    "source",
    "families",
]
HARD_KINDS = {
    "hard_negative",
    "same_audio",
    "same_audio_lookalike",
    "template_negative",
    "partial",
    "copy_of_copy",
}
HARD_EDITS = {
    "overlay_onto_video",
    "pip_in_other",
    "overlay_onto_screenshot",
    "blend",
    "hstack",
    "vstack",
    "reframe_916",
    "insert_in_footage",
}
STREAM_START = datetime(2024, 7, 1)


# ---------------------------------------------------------------- making one group


def _load_piece(p: dict, sources: dict[str, Source]) -> Clip:
    return load(Path(sources[p["source"]].path), p["start"], p["dur"])


def _still_clip(it: dict, rng, sources, fps: float = 25.0) -> Clip:
    """A still or near-still clip of content distinct to this item (silent)."""
    from tools.trainset.overlays import clip_from_still

    h, w = (360, 640) if rng.random() < 0.6 else (640, 360)
    variant = it["still"]
    if variant == "photo":
        frame = _load_piece(it["base"], sources).frames[0]
        return clip_from_still(frame, it["still_s"], fps, zoom=float(rng.uniform(0, 0.15)))
    if variant == "card" and _has_pil():
        from tools.trainset.overlays import text_card

        return clip_from_still(text_card(rng, h, w)[0], it["still_s"], fps)
    img = np.zeros((h, w, 3), np.uint8)
    cells = rng.integers(0, 2, (9, 16)).astype(bool)
    yy, xx = np.mgrid[0:h, 0:w]
    img[cells[yy * 9 // h, xx * 16 // w]] = int(rng.integers(3, 14))  # faint, distinct
    return clip_from_still(img, it["still_s"], fps)


STILL_TAKES_ALIKE = 0.9  # thumbnail correlation above which two frames are one moment


def _still_take(it: dict, rng, made: dict[str, Clip], sources, fps: float = 25.0) -> Clip:
    """A near-still take (``overlays.near_still_take``) of the item's frame in the look drawn
    from ``look_seed``; the second take of a pair uses its backup frame instead when its own
    is too like the first take's (thumbnail correlation > STILL_TAKES_ALIKE), so that the
    pair stays two different recordings."""
    from tools.trainset.overlays import near_still_take, still_look, thumb_similarity

    look = still_look(np.random.default_rng(it["look_seed"]))
    frame = _load_piece(it["base"], sources).frames[0]
    if "other" in it:
        first = made["still_a:frame"].frames[0]
        if frame.shape != first.shape or thumb_similarity(frame, first) > STILL_TAKES_ALIKE:
            frame = _load_piece(it["backup"], sources).frames[0]
    else:
        made["still_a:frame"] = Clip(frame[None], fps)
    clip = near_still_take(frame, it["still_s"], it.get("fps", fps), look, rng)
    if "other" not in it:
        made[it["id"]] = clip
    return clip


def _has_pil() -> bool:
    import importlib.util

    return importlib.util.find_spec("PIL") is not None


def _partners(it: dict, sources) -> dict[int, Clip]:
    return {int(k): _load_piece(p, sources) for k, p in it["partners"].items()}


def build_item(
    it: dict, made: dict[str, Clip], files: dict[str, Path], sources
) -> tuple[Clip | None, list[dict]]:
    """The clip of one planned item (None for an exact copy) and its applied edits."""
    rng = np.random.default_rng(it["seed"])
    seeds = {int(k): v for k, v in it["seeds"].items()}
    kind = it["kind"]
    if kind == "exact":
        return None, []
    if kind == "original":
        base = _load_piece(it["base"], sources)
        made["orig"] = base
        return base, []
    if kind == "copy_of_copy":
        base = load(files[it["parent"]])
    elif kind in ("copy", "copy_new_audio", "partial"):
        base = made["orig"]
    elif kind in ("same_audio", "same_audio_lookalike"):
        visual = _load_piece(it["base"], sources)
        a = made["orig"].audio
        m = int(round(visual.duration * AUDIO_RATE))
        base = visual.with_(audio=None if a is None else np.resize(a, m).astype(np.float32))
    elif kind == "still_negative":
        base = _still_clip(it, rng, sources)
    elif kind == "still_take":
        base = _still_take(it, rng, made, sources)
    elif kind == "still_copy":
        base = made[it["parent"]]
    else:  # hard_negative, template_negative, distractor
        base = _load_piece(it["base"], sources)
    return apply_chain(base, it["chain"], rng, _partners(it, sources), seeds)


def make_group(plan: dict, out: Path, sources: dict[str, Source]) -> dict:
    """Write every video of ``plan`` to out/videos, then its done-marker; returns the marker.
    Each video is encoded last as H.264 + AAC (<= 640 px) at a random CRF 18–28."""
    t0 = time.time()
    made: dict[str, Clip] = {}
    files: dict[str, Path] = {}
    items = {it["id"]: it for it in plan["items"]}
    results = []
    for iid in plan["seq"]:
        it = items[iid]
        t = time.time()
        path = out / "videos" / f"{it['uuid']}.mp4"
        clip, applied = build_item(it, made, files, sources)
        if clip is None:
            shutil.copyfile(files["orig"], path.with_name(path.name + ".tmp"))
            os.replace(path.with_name(path.name + ".tmp"), path)
            meta = {}
        else:
            crf = int(np.random.default_rng(it["seed"] + 1).integers(18, 29))
            write_atomic(path, encode(clip, crf=crf))
            h, w = fit_size(*clip.size)
            meta = {
                "frames": len(clip.frames),
                "fps": round(clip.fps, 3),
                "height": h,
                "width": w,
                "duration_s": round(clip.duration, 3),
                "audio": clip.audio is not None,
                "crf": crf,
            }
        files[iid] = path
        results.append(
            {
                "id": iid,
                "applied": applied,
                "seconds": round(time.time() - t, 2),
                "bytes": path.stat().st_size,
                **meta,
            }
        )
    marker = {
        **plan,
        "footage": footage_of(plan),
        "results": results,
        "elapsed_s": round(time.time() - t0, 2),
        "finished": time.time(),
    }
    write_atomic(out / "groups" / f"{plan['group']}.json", json.dumps(marker, indent=1).encode())
    return marker


# ---------------------------------------------------------------- the run


def load_done(out: Path) -> dict[str, dict]:
    """group id -> done-marker, for every finished group under out/groups."""
    done = {}
    for p in sorted((out / "groups").glob("*.json")):
        m = json.loads(p.read_text())
        done[m["group"]] = m
    return done


def clean_orphans(out: Path, done: dict[str, dict]) -> int:
    """Delete videos (and temporary files) that belong to no finished group; returns how many.
    Only safe while no other run writes to ``out``."""
    keep = {f"{it['uuid']}.mp4" for m in done.values() for it in m["items"]}
    n = 0
    for p in (out / "videos").iterdir():
        if p.name not in keep:
            p.unlink()
            n += 1
    for p in (out / "groups").glob("*.tmp"):
        p.unlink()
    return n


def _work(args: tuple[dict, str, dict]) -> tuple[str, float, int, str | None]:
    plan, out, sources = args
    t = time.time()
    try:
        make_group(plan, Path(out), sources)
        return plan["group"], time.time() - t, len(plan["items"]), None
    except Exception:  # noqa: BLE001 - one bad group must not stop the run; it is retried
        return plan["group"], time.time() - t, 0, traceback.format_exc()


def collect_sources(dirs: list[Path], dev_manifest: Path | None) -> list[Source]:
    out = sources_from_manifest(dev_manifest) if dev_manifest else []
    for d in dirs:
        if d.is_dir():
            out += sources_from_dir(d)
    ids = [s.id for s in out]
    if len(ids) != len(set(ids)):
        raise SystemExit("two sources share an id; rename one of the files")
    return out


def run(args) -> None:
    if args.nice:
        os.nice(args.nice)
    out = args.out
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "groups").mkdir(parents=True, exist_ok=True)
    sources = collect_sources(args.sources, args.dev_manifest)
    done = load_done(out)
    removed = clean_orphans(out, done)
    plans = plan_groups(
        sources,
        done,
        args.groups,
        args.seed,
        args.augly_share,
        args.max_per_source,
        tuple(args.copies),
        StillTakes(
            args.still_takes, tuple(args.still_take_seconds), args.still_same_length, args.still_fps
        ),
    )
    print(
        f"{len(sources)} sources ({sum(s.duration for s in sources) / 60:.1f} min), "
        f"{len(done)} groups done, {len(plans)} to make, {removed} orphan files removed",
        flush=True,
    )
    smap = {s.id: s for s in sources}
    jobs = [(p, str(out), smap) for p in plans]
    t0, n_ok, n_items = time.time(), 0, 0
    if args.workers <= 1:
        results = map(_work, jobs)
    else:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(args.workers, maxtasksperchild=20)
        results = pool.imap_unordered(_work, jobs)
    for gid, secs, n, err in results:
        if err:
            print(f"FAILED {gid} after {secs:.1f} s:\n{err}", file=sys.stderr, flush=True)
            continue
        n_ok += 1
        n_items += n
        el = time.time() - t0
        print(
            f"done {gid}: {n} videos in {secs:.1f} s | {n_ok}/{len(plans)} groups, "
            f"{n_ok / el * 60:.2f} groups/min, {el / max(1, n_items):.2f} s/video",
            flush=True,
        )


# ---------------------------------------------------------------- the manifest


def _is_hard(it: dict, chain: list[str]) -> bool:
    return it["kind"] in HARD_KINDS or bool(HARD_EDITS & set(chain))


def manifest_rows(done: dict[str, dict], seed: int = 0) -> list[dict]:
    """One manifest row per video of the done groups, in ``created`` order. Each group starts
    at a seeded time spread over the stream and its videos follow in plan order with gaps of
    1–90 min, so groups interleave while every original precedes its copies."""
    span_min = max(60, 45 * len(done))
    rows = []
    for gid, m in sorted(done.items()):
        rng = np.random.default_rng([seed, stable_hash(gid)])
        t = STREAM_START + timedelta(minutes=float(rng.uniform(0, span_min)))
        items = {it["id"]: it for it in m["items"]}
        uuid_of = {i: it["uuid"] for i, it in items.items()}
        chains: dict[str, list[str]] = {}
        for iid in m["seq"]:
            it = items[iid]
            t += timedelta(seconds=int(rng.integers(60, 90 * 60)))
            own = list(it["chain"])
            chain = (chains.get(it["parent"], []) + own) if it["kind"] == "copy_of_copy" else own
            chains[iid] = chain
            fams = list(dict.fromkeys(FAMILIES[c] for c in chain if c in FAMILIES))
            rows.append(
                {
                    "created": t.strftime("%Y-%m-%d %H:%M:%S"),
                    "uuid": it["uuid"],
                    "link": f"videos/{it['uuid']}.mp4",
                    "is_duplicate": str(it["is_duplicate"]),
                    "duplicate_for": uuid_of[it["root"]] if it["root"] else "",
                    "is_hard": str(_is_hard(it, chain)),
                    "kind": it["kind"],
                    "chain": json.dumps(chain),
                    "source": it["source"],
                    "families": ";".join(fams),
                }
            )
    rows.sort(key=lambda r: (r["created"], r["uuid"]))
    return rows


def assemble(args) -> None:
    done = load_done(args.out)
    rows = manifest_rows(done, args.seed)
    tmp = args.out / "manifest.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, args.out / "manifest.csv")
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    pos = sum(r["is_duplicate"] == "True" for r in rows)
    print(
        f"{len(done)} groups, {len(rows)} videos: {pos} duplicates, {len(rows) - pos} not; "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    )


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    r = sub.add_parser("run", help="make groups (the default command)")
    r.add_argument(
        "--sources",
        type=Path,
        nargs="*",
        default=[],
        help="directories of source videos (source id = file stem)",
    )
    r.add_argument(
        "--dev-manifest",
        type=Path,
        help="a Yappy manifest: only its original/distractor/hard_negative/"
        "same_audio rows become sources, never its copies",
    )
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--groups", type=int, default=400, help="total groups wanted (done + new)")
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--nice", type=int, default=0)
    r.add_argument(
        "--augly-share",
        type=float,
        default=0.1,
        help="share of overlay/perspective edits done by AugLy itself (slow)",
    )
    r.add_argument("--max-per-source", type=int, default=20)
    r.add_argument(
        "--copies",
        type=int,
        nargs=2,
        default=[3, 5],
        metavar=("MIN", "MAX"),
        help="copies of each original (edits without partner footage use none, so "
        "more copies per original stretch a small corpus further)",
    )
    r.add_argument(
        "--still-takes",
        type=float,
        default=0.0,
        metavar="P",
        help="share of groups that also get two near-still takes of one fixed-camera "
        "setup (not copies of each other) and copies of the first",
    )
    r.add_argument(
        "--still-take-seconds",
        type=float,
        nargs=2,
        default=[4.0, 15.0],
        metavar=("LO", "HI"),
        help="length range of a near-still take, s",
    )
    r.add_argument(
        "--still-same-length",
        action="store_true",
        help="both takes of a setup last as long (a lab's fixed recording length)",
    )
    r.add_argument("--still-fps", type=float, default=25.0, help="frame rate of near-still takes")
    a = sub.add_parser("assemble", help="write OUT/manifest.csv from the done groups")
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--seed", type=int, default=0)
    if not argv or argv[0] not in ("run", "assemble", "-h", "--help"):
        argv = ["run", *argv]
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.cmd == "assemble":
        assemble(args)
    else:
        if not args.sources and not args.dev_manifest:
            raise SystemExit("give --sources and/or --dev-manifest")
        run(args)


if __name__ == "__main__":
    main()
