"""What to generate: sources, exclusive footage, and the plan of each source group.

Labels stay right only if no piece of footage shows up in two unrelated rows: a background
reused for two copies would make them near-duplicates of each other while the manifest says
they are unrelated. So every segment taken from a source (an original, a hard negative, a
partner's background, a still frame) is allocated exclusively, with a gap of at least
``GAP_S`` to any other piece of that source, and the done-markers record what each finished
group used so a rerun (or a run with more sources) never takes it again.

Planning is pure (numpy random generators seeded from --seed and the group id): no media is
touched here except probing durations.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.trainset.edits import EDITS, FAMILY_NAMES, TEMPLATE_EDITS
from tools.trainset.media import probe

GAP_S = 2.0  # s between two pieces of one source
MIN_ORIG_S, MAX_ORIG_S = 3.0, 15.0
VIDEO_EXT = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv"}
DEV_KINDS = ("original", "distractor", "hard_negative", "same_audio")
FAMILY_WEIGHTS = {
    "spatial": 0.27,
    "overlay": 0.25,
    "quality": 0.22,
    "temporal": 0.1,
    "blend_stack": 0.07,
    "audio": 0.09,
}
NOT_SAMPLED = {"partial_insert"}  # only for the partial kind


@dataclass(frozen=True)
class Source:
    """A source clip: id (stable, unique), path, duration in s, has an audio stream."""

    id: str
    path: str
    duration: float
    has_audio: bool


def stable_hash(*parts) -> int:
    """A 63-bit int from the parts' text, the same in every process and run."""
    h = hashlib.sha1("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") >> 1


def safe_id(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s)[:80]


def _source(sid: str, path: Path) -> Source | None:
    try:
        d, a = probe(path)
    except Exception:  # noqa: BLE001 - an unreadable file is just not a source
        return None
    return Source(sid, str(path), d, a) if d > 0.5 else None


def sources_from_dir(d: Path) -> list[Source]:
    """Every video file under ``d`` (recursively); id = the file's stem (made unique)."""
    if (d.parent / "manifest.csv").exists() and d.name == "videos":
        raise SystemExit(f"{d} belongs to a benchmark (it holds its copies): use --dev-manifest")
    out, seen = [], set()
    for p in sorted(d.rglob("*")):
        if p.suffix.lower() in VIDEO_EXT and p.is_file():
            sid = safe_id(p.stem)
            while sid in seen:
                sid += "_"
            seen.add(sid)
            if s := _source(sid, p):
                out.append(s)
    return out


def sources_from_manifest(manifest: Path) -> list[Source]:
    """The rows of a Yappy-format benchmark that are not copies (kinds DEV_KINDS)."""
    out = []
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["kind"] in DEV_KINDS and r["is_duplicate"] != "True":
            if s := _source(f"dev-{r['uuid'][:13]}", manifest.parent / r["link"]):
                out.append(s)
    return out


@dataclass(frozen=True)
class StillTakes:
    """Near-still takes of fixed-camera setups: the share of groups that get a pair, the length
    range of a take (s), whether both takes of a pair last as long (a lab's fixed recording
    length), and their frame rate."""

    share: float = 0.0
    seconds: tuple[float, float] = (4.0, 15.0)
    same_length: bool = False
    fps: float = 25.0


class Footage:
    """Which seconds of each source are taken; ``take`` hands out pieces that keep GAP_S from
    every earlier piece of the same source."""

    def __init__(self, sources: list[Source]):
        self.duration = {s.id: s.duration for s in sources}
        self.taken: dict[str, list[tuple[float, float]]] = {s.id: [] for s in sources}

    def reserve(self, sid: str, start: float, end: float) -> None:
        self.taken.setdefault(sid, []).append((start, end))

    def free(self, sid: str) -> list[tuple[float, float]]:
        """Free intervals (start, end) in s where a new piece may lie."""
        d = self.duration.get(sid, 0.0)
        blocked = sorted((max(0, a - GAP_S), min(d, b + GAP_S)) for a, b in self.taken[sid])
        out, t = [], 0.0
        for a, b in blocked:
            if a > t:
                out.append((t, a))
            t = max(t, b)
        if d > t:
            out.append((t, d))
        return out

    def take(
        self, sid: str, length: float, rng: np.random.Generator, min_len: float = 0.0
    ) -> tuple[float, float] | None:
        """A random free piece of ``length`` s (or the longest free one if >= min_len), as
        (start, duration), now taken; None when no room."""
        gaps = [(a, b) for a, b in self.free(sid) if b - a >= min(length, max(min_len, 1e-3))]
        if not gaps:
            return None
        fits = [(a, b) for a, b in gaps if b - a >= length]
        if fits:
            w = np.array([b - a - length + 1e-3 for a, b in fits])
            a, b = fits[int(rng.choice(len(fits), p=w / w.sum()))]
            start = float(rng.uniform(a, b - length))
        else:
            a, b = max(gaps, key=lambda g: g[1] - g[0])
            start, length = a, b - a
        self.reserve(sid, start, start + length)
        return round(start, 3), round(length, 3)


def available_edits(augly_share: float) -> dict[str, list[str]]:
    """family -> edit names the sampler may use here (PIL and AugLy ones only when installed;
    AugLy's only when augly_share > 0)."""
    has_pil = importlib.util.find_spec("PIL") is not None
    use_augly = augly_share > 0 and _augly_available()
    fam: dict[str, list[str]] = {f: [] for f in FAMILY_NAMES}
    for e in EDITS.values():
        if e.name in NOT_SAMPLED or (e.backend == "pil" and not has_pil):
            continue
        if e.backend == "augly" and not use_augly:
            continue
        fam[e.family].append(e.name)
    return fam


def _augly_available() -> bool:
    from tools.trainset import augly_edits

    return augly_edits.available()


class Planner:
    """Samples group plans over ``sources``, taking footage from ``footage``."""

    def __init__(
        self,
        sources: list[Source],
        footage: Footage,
        seed: int,
        augly_share: float = 0.1,
        p_exact: float = 0.04,
        p_partial: float = 0.35,
        p_coc: float = 0.35,
        p_distractor: float = 0.15,
        copies: tuple[int, int] = (3, 5),
        still: StillTakes = StillTakes(),
    ):
        self.sources = {s.id: s for s in sources}
        self.footage, self.seed = footage, seed
        self.augly_share = augly_share
        self.families = available_edits(augly_share)
        from tools.trainset.augly_edits import AUGLY_TWINS

        self.twins = {
            k: v
            for k, v in AUGLY_TWINS.items()
            if v in EDITS and any(v in names for names in self.families.values())
        }
        self.p = {
            "exact": p_exact,
            "partial": p_partial,
            "coc": p_coc,
            "distractor": p_distractor,
        }
        self.still = still
        self.copies = copies  # (fewest, most) copies of each original

    # -- chains

    def sample_chain(self, rng, n: int, has_audio: bool, allow_partner: bool = True) -> list[str]:
        """``n`` edit names from distinct families (at most one that needs partner footage;
        audio edits other than replacement only when there is a soundtrack)."""
        fams = [f for f in FAMILY_NAMES if self.families[f]]
        w = np.array([FAMILY_WEIGHTS[f] for f in fams])
        picked = rng.choice(len(fams), size=min(n, len(fams)), replace=False, p=w / w.sum())
        chain, partner_used = [], not allow_partner
        for fi in picked:
            names = [e for e in self.families[fams[fi]] if not e.startswith("augly_")]
            if partner_used:
                names = [e for e in names if EDITS[e].needs is None]
            if not has_audio:
                names = [e for e in names if EDITS[e].family != "audio" or e == "audio_replace"]
            if not names:
                continue
            name = names[int(rng.integers(0, len(names)))]
            if name in self.twins and rng.random() < self.augly_share:
                name = self.twins[name]
            partner_used |= EDITS[name].needs is not None
            chain.append(name)
        return chain or ["crop"]

    def _chain_len(self, rng) -> int:
        return int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))

    # -- footage

    def _partner(
        self, rng, exclude: str, length: float, need_audio: bool = False, min_len: float = 1.5
    ) -> dict | None:
        ids = [
            i for i, s in self.sources.items() if i != exclude and (s.has_audio or not need_audio)
        ]
        for k in rng.permutation(len(ids)):
            got = self.footage.take(ids[k], length, rng, min_len=min_len)
            if got:
                return {"source": ids[k], "start": got[0], "dur": got[1]}
        return None

    def _with_partners(
        self, rng, chain: list[str], exclude: str, length: float
    ) -> tuple[list[str], dict]:
        """The chain with footage for each edit that needs some; edits without any dropped."""
        out, partners = [], {}
        for name in chain:
            need = EDITS[name].needs
            if need:
                p = self._partner(
                    rng,
                    exclude,
                    length if name != "insert_in_footage" else 8.0,
                    need_audio=need == "audio",
                )
                if p is None:
                    continue
                partners[str(len(out))] = p
            out.append(name)
        return out or ["hflip"], partners

    # -- groups

    def plan_group(self, gid: str, sid: str) -> dict | None:
        """The plan of group ``gid`` rooted on source ``sid``, or None when the source has no
        room left for an original."""
        rng = np.random.default_rng([self.seed, stable_hash(gid)])
        src = self.sources[sid]
        length = float(rng.uniform(MIN_ORIG_S, MAX_ORIG_S))
        seg = self.footage.take(sid, length, rng, min_len=MIN_ORIG_S)
        if seg is None:
            return None
        length = seg[1]
        items: list[dict] = []

        def add(kind: str, **kw) -> dict:
            it = {
                "id": f"{kind}{len(items)}",
                "kind": kind,
                "uuid": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                "is_duplicate": kind not in NEGATIVE_KINDS,
                "root": None,
                "parent": None,
                "deps": [],
                "chain": [],
                "partners": {},
                "seeds": {},
                "base": None,
                "source": sid,
                "seed": int(rng.integers(0, 2**62)),
            }
            it.update(kw)
            items.append(it)
            return it

        orig = add("original", base={"source": sid, "start": seg[0], "dur": length})
        orig["id"] = "orig"
        self._copies(rng, add, orig, src, length)
        self._negatives(rng, add, orig, src, length, items)
        if self.still.share and rng.random() < self.still.share:
            self._still_takes(rng, add, src)
        return {
            "group": gid,
            "source": sid,
            "seed": self.seed,
            "items": items,
            "seq": _topo_order(rng, items),
        }

    def _copies(self, rng, add, orig, src: Source, length: float) -> None:
        sid = src.id
        copies: list[dict] = []
        for _ in range(int(rng.integers(self.copies[0], self.copies[1] + 1))):
            r = rng.random()
            if r < self.p["exact"] and not any(c["kind"] == "exact" for c in copies):
                copies.append(add("exact", root="orig", parent="orig", deps=["orig"]))
                continue
            if r < self.p["exact"] + self.p["partial"] / 4 and not any(
                c["kind"] == "partial" for c in copies
            ):
                p = self._partner(rng, sid, 10.0, min_len=2.0)
                if p:
                    extra = self.sample_chain(rng, 1, src.has_audio, allow_partner=False)
                    chain = ["partial_insert"] + ([extra[0]] if rng.random() < 0.4 else [])
                    copies.append(
                        add(
                            "partial",
                            root="orig",
                            parent="orig",
                            deps=["orig"],
                            chain=chain,
                            partners={"0": p},
                        )
                    )
                    continue
            earlier = [c for c in copies if c["kind"] in ("copy", "copy_new_audio")]
            if earlier and r > 1 - self.p["coc"] / 3:
                parent = earlier[int(rng.integers(0, len(earlier)))]
                chain, partners = self._with_partners(
                    rng, self.sample_chain(rng, int(rng.integers(1, 3)), src.has_audio), sid, length
                )
                copies.append(
                    add(
                        "copy_of_copy",
                        root="orig",
                        parent=parent["id"],
                        deps=[parent["id"]],
                        chain=chain,
                        partners=partners,
                    )
                )
                continue
            chain, partners = self._with_partners(
                rng, self.sample_chain(rng, self._chain_len(rng), src.has_audio), sid, length
            )
            kind = "copy_new_audio" if "audio_replace" in chain else "copy"
            copies.append(
                add(kind, root="orig", parent="orig", deps=["orig"], chain=chain, partners=partners)
            )

    def _negatives(self, rng, add, orig, src: Source, length: float, items: list[dict]) -> None:
        sid = src.id
        if rng.random() < 0.8:
            seg = self.footage.take(
                sid, float(rng.uniform(MIN_ORIG_S, MAX_ORIG_S)), rng, min_len=MIN_ORIG_S
            )
            if seg:
                # half the time over the original's soundtrack: a trending sound over another
                # moment of the same scene, the case where sound and looks both mislead
                kind = (
                    "same_audio_lookalike"
                    if src.has_audio and rng.random() < 0.5
                    else "hard_negative"
                )
                add(
                    kind,
                    base={"source": sid, "start": seg[0], "dur": seg[1]},
                    chain=self._light_chain(rng, False)
                    if kind != "hard_negative"
                    else self._light_chain(rng, src.has_audio),
                    deps=["orig"] if kind != "hard_negative" else [],
                )
        if src.has_audio and rng.random() < 0.5:
            p = self._partner(rng, sid, length, min_len=2.0)
            if p:
                add("same_audio", base=p, deps=["orig"], source=p["source"])
        self._template_negative(rng, add, items, sid, length)
        if rng.random() < 0.35:
            variant = str(rng.choice(["black", "card", "photo"]))
            dur = round(float(rng.uniform(2, 10)), 2)
            base = self._partner(rng, sid, 0.5, min_len=0.2) if variant == "photo" else None
            if variant != "photo" or base:
                add(
                    "still_negative",
                    still=variant,
                    still_s=dur,
                    base=base,
                    source=base["source"] if base else "still",
                )
        if rng.random() < self.p["distractor"]:
            p = self._partner(
                rng, sid, float(rng.uniform(MIN_ORIG_S, MAX_ORIG_S)), min_len=MIN_ORIG_S
            )
            if p:
                has_audio = self.sources[p["source"]].has_audio
                chain = self.sample_chain(rng, self._chain_len(rng), has_audio, allow_partner=False)
                add("distractor", base=p, chain=chain, source=p["source"])

    def _still_takes(self, rng, add, src: Source) -> None:
        """Two near-still takes of one fixed-camera setup (a frame each, from two moments of
        the source, with one shared look: darkness, noise, small movers) and copies of the
        first. The second take is not a copy: it is the lab's next recording, where only the
        frame's content and the movers differ. ``backup`` is a frame of another source, used
        when the source's two frames turn out alike (a static shot)."""
        a = self.footage.take(src.id, 0.5, rng, min_len=0.2)
        b = self.footage.take(src.id, 0.5, rng, min_len=0.2)
        backup = self._partner(rng, src.id, 0.5, min_len=0.2)
        if a is None or b is None or backup is None:
            return
        look_seed = int(rng.integers(0, 2**62))
        lo, hi = self.still.seconds
        dur = round(float(rng.uniform(lo, hi)), 2)
        first = add(
            "still_take",
            base={"source": src.id, "start": a[0], "dur": a[1]},
            look_seed=look_seed,
            still_s=dur,
            fps=self.still.fps,
        )
        first["id"] = "still_a"
        add(
            "still_take",
            base={"source": src.id, "start": b[0], "dur": b[1]},
            look_seed=look_seed,
            still_s=dur if self.still.same_length else round(float(rng.uniform(lo, hi)), 2),
            fps=self.still.fps,
            backup=backup,
            other=first["uuid"],
            deps=["still_a"],
        )
        for _ in range(int(rng.integers(1, 3))):
            chain, partners = self._with_partners(
                rng, self.sample_chain(rng, self._chain_len(rng), False), src.id, dur
            )
            add(
                "still_copy",
                root="still_a",
                parent="still_a",
                deps=["still_a"],
                chain=chain,
                partners=partners,
            )

    def _light_chain(self, rng, has_audio: bool) -> list[str]:
        """0–1 edits without partners: negatives look edited as often as copies do."""
        return (
            self.sample_chain(rng, 1, has_audio, allow_partner=False) if rng.random() < 0.4 else []
        )

    def _template_negative(self, rng, add, items, sid: str, length: float) -> None:
        """With p 0.35: one copy gets a template edit (meme band, screenshot, caption) and a
        different clip gets the very same template (same seed), not a duplicate."""
        usable = [t for t in TEMPLATE_EDITS if any(t in f for f in self.families.values())]
        copies = [it for it in items if it["kind"] in ("copy", "copy_new_audio")]
        if not usable or not copies or rng.random() >= 0.35:
            return
        p = self._partner(rng, sid, length, min_len=2.0)
        if p is None:
            return
        t = usable[int(rng.integers(0, len(usable)))]
        tseed = int(rng.integers(0, 2**62))
        c = copies[int(rng.integers(0, len(copies)))]
        if len(c["chain"]) >= 3:
            c["chain"].pop()
            c["partners"].pop(str(len(c["chain"])), None)
        c["seeds"][str(len(c["chain"]))] = tseed
        c["chain"].append(t)
        add(
            "template_negative",
            base=p,
            chain=[t],
            seeds={"0": tseed},
            deps=[c["id"]],
            source=p["source"],
        )


NEGATIVE_KINDS = {
    "original",
    "hard_negative",
    "same_audio_lookalike",
    "same_audio",
    "template_negative",
    "still_negative",
    "distractor",
    "still_take",
}


def _topo_order(rng, items: list[dict]) -> list[str]:
    """A random order of item ids in which every item comes after its deps."""
    left, placed, order = {it["id"]: it for it in items}, set(), []
    while left:
        ready = sorted(i for i, it in left.items() if all(d in placed for d in it["deps"]))
        pick = ready[int(rng.integers(0, len(ready)))]
        order.append(pick)
        placed.add(pick)
        del left[pick]
    return order


def footage_of(plan: dict) -> list[tuple[str, float, float]]:
    """(source, start, end) of every piece a plan uses."""
    out = []
    for it in plan["items"]:
        pieces = ([it["base"]] if it.get("base") else []) + list(it["partners"].values())
        out += [(p["source"], p["start"], p["start"] + p["dur"]) for p in pieces]
    return out


def plan_groups(
    sources: list[Source],
    done: dict[str, dict],
    n_groups: int,
    seed: int,
    augly_share: float = 0.1,
    max_per_source: int = 20,
    copies: tuple[int, int] = (3, 5),
    still: StillTakes = StillTakes(),
) -> list[dict]:
    """Plans of the groups still to make so that done + new = n_groups (fewer when footage
    runs out). Group ids are ``<source>~<k>`` for the source's k-th group; sources take turns
    in a seeded order, so adding sources adds groups without touching done ones."""
    footage = Footage(sources)
    for g in done.values():
        for sid, a, b in g["footage"]:
            footage.reserve(sid, a, b)
    planner = Planner(sources, footage, seed, augly_share, copies=copies, still=still)
    order = sorted((s.id for s in sources), key=lambda i: stable_hash(seed, i))
    plans, total = [], len(done)
    done_passes = {int(g.rsplit("~", 1)[1]) for g in done if "~" in g}
    for k in range(max_per_source):
        progressed = False
        for sid in order:
            if total >= n_groups:
                return plans
            gid = f"{safe_id(sid)}~{k}"
            if gid in done:
                continue
            plan = planner.plan_group(gid, sid)
            if plan:
                plans.append(plan)
                total += 1
                progressed = True
        if not progressed and not any(p > k for p in done_passes):
            break
    return plans
