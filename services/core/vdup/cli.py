"""The ``vdup`` command: thin wrappers over the library, one subcommand each.

Subcommands owned by other parts of the tree (``triton``, ``indexer``, ``reshard``, ``up``,
``calibrate``) live next to their code and plug in through ``add_arguments(parser)`` /
``run(args)``. This module is the composition root: it alone may import every package, and
does so lazily, inside the subcommand that needs it, so ``vdup check`` never loads the web
framework. The load and index benchmarks are tooling, run as scripts from ``loadtests/``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path

PLUGINS = {
    "triton": ("vdup.devstack.triton", "Run the real Triton server on 127.0.0.1 with our models."),
    "indexer": ("vdup.indexer.server", "Run one indexer shard (FAISS + SQLite) over HTTP."),
    "reshard": ("vdup.indexer.reshard", "Move videos to their shards after the shard count grew."),
    "up": ("vdup.devstack.stack", "Start Triton, N indexer shards and the API as local processes."),
    "calibrate": ("vdup.calibrate", "Fit the decision model from labelled manifests."),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vdup", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="Run the HTTP API.")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--data", type=Path, default=None, help="catalog directory (VDUP_DATA_DIR)")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=_serve)

    p = sub.add_parser("check", help="Check one video (path or URL); print the decision as JSON.")
    p.add_argument("target")
    p.add_argument("--uuid", default=None)
    p.add_argument("--data", type=Path, default=None)
    p.set_defaults(func=_check)

    p = sub.add_parser("ingest", help="Bulk-load a catalog from a Yappy-format manifest.")
    p.add_argument("manifest", type=Path)
    p.add_argument("--data", type=Path, default=None)
    p.set_defaults(func=_ingest)

    p = sub.add_parser("eval", help="Replay a manifest and score the decisions.")
    p.add_argument("manifest", type=Path)
    p.add_argument(
        "--data", type=Path, default=None, help="catalog directory (default: a fresh temporary one)"
    )
    p.add_argument("--out", type=Path, default=None, help="write predictions CSV here")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="features stored by 'vdup calibrate --cache': rows found there are not extracted",
    )
    p.set_defaults(func=_eval)

    p = sub.add_parser("db", help="The PostgreSQL catalog truth (VDUP_DATABASE_URL).")
    dsub = p.add_subparsers(dest="db_command", required=True)
    du = dsub.add_parser("upgrade", help="Apply the schema migrations it lacks (idempotent).")
    du.set_defaults(func=_db_upgrade)
    dv = dsub.add_parser("version", help="Print the schema version.")
    dv.set_defaults(func=_db_version)

    p = sub.add_parser("review", help="Moderators' verdicts in the embedded catalog.")
    rsub = p.add_subparsers(dest="review_command", required=True)
    rx = rsub.add_parser(
        "export",
        help="Write the verdicts as a labelled Yappy-format manifest (for 'vdup calibrate').",
    )
    rx.add_argument("--data", type=Path, default=None, help="catalog directory (VDUP_DATA_DIR)")
    rx.add_argument("--out", type=Path, required=True, help="manifest CSV to write")
    rx.set_defaults(func=_review_export)

    p = sub.add_parser("models", help="Model repository tasks.")
    msub = p.add_subparsers(dest="models_command", required=True)
    mi = msub.add_parser("install", help="Put the SSCD and audio models into a model repository.")
    mi.add_argument(
        "--dest", type=Path, default=None, help="model repository (default: ./model_repository)"
    )
    mi.set_defaults(func=_models_install)

    for name, (module, help_text) in PLUGINS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=_plugin(module), _plugin_parser=p)
        try:
            importlib.import_module(module).add_arguments(p)
        except ImportError:
            pass

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return int(args.func(args) or 0)


def _plugin(module: str):
    def run(args: argparse.Namespace) -> int:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            print(f"vdup: this command is not available: {exc}", file=sys.stderr)
            return 2
        return int(mod.run(args) or 0)

    return run


def _truth(args: argparse.Namespace):
    from vdup.indexer.truth import Truth

    settings = _settings(args)
    if not settings.database_url:
        print("vdup: set VDUP_DATABASE_URL to the catalog database", file=sys.stderr)
        return None
    return Truth(settings.database_url, pool_size=1)


def _db_upgrade(args: argparse.Namespace) -> int:
    truth = _truth(args)
    if truth is None:
        return 2
    try:
        before = truth.version()
        after = truth.upgrade()
    finally:
        truth.close()
    print(json.dumps({"schema_version": after, "was": before}))
    return 0


def _db_version(args: argparse.Namespace) -> int:
    truth = _truth(args)
    if truth is None:
        return 2
    try:
        print(json.dumps({"schema_version": truth.version()}))
    finally:
        truth.close()
    return 0


def _review_export(args: argparse.Namespace) -> int:
    import csv

    from vdup.catalog.local import LocalCatalog
    from vdup.catalog.review import LABEL_COLUMNS, labels

    settings = _settings(args)
    if not (settings.data_dir / "catalog.sqlite").exists():
        print(f"vdup: no catalog in {settings.data_dir}", file=sys.stderr)
        return 2
    catalog = LocalCatalog(settings.data_dir, snapshot_every=0, verify=False)
    try:
        rows = labels(catalog.audit(limit=1_000_000), catalog.get)
    finally:
        catalog.close()
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LABEL_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    print(json.dumps({"rows": len(rows), "out": str(args.out)}))
    return 0


def _settings(args: argparse.Namespace):
    from vdup.settings import Settings

    overrides = {}
    if getattr(args, "data", None) is not None:
        overrides["data_dir"] = args.data
    for name in ("host", "port"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    return Settings(**overrides)


def load_target(target: str, settings) -> bytes:
    """Bytes of a local path, or of an http(s) URL fetched under the link policy."""
    if target.startswith(("http://", "https://")):
        import asyncio

        from vdup.api.fetch import fetch_bytes, fetch_settings_from

        return asyncio.run(fetch_bytes(target, fetch_settings_from(settings)))
    return Path(target).read_bytes()


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    if args.workers > 1:
        print(
            "vdup: one worker per process; scale with replicas (see docs/architecture.md)",
            file=sys.stderr,
        )
    from vdup.api.app import create_app

    logging.getLogger("httpx").setLevel(logging.WARNING)  # else one INFO line per shard call
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from vdup.errors import VdupError
    from vdup.runtime import build_checker

    settings = _settings(args)
    checker = build_checker(settings)
    try:
        data = load_target(args.target, settings)
        uuid = args.uuid or _stem(args.target)
        result = checker.check(data, uuid, source=args.target)
    except VdupError as exc:
        print(json.dumps({"error": exc.code, "detail": exc.message}))
        return 1
    finally:
        checker.catalog.close()
    print(json.dumps(result.to_response()))
    return 0


def _stem(target: str) -> str | None:
    from vdup.api.ids import id_from_link

    return id_from_link(target)


def _ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vdup.evaluate import read_manifest, run
    from vdup.runtime import build_checker

    settings = _settings(args)
    rows = read_manifest(args.manifest)
    checker = build_checker(settings)
    try:
        with tqdm(total=len(rows), unit="video") as bar:
            preds = run(
                checker,
                rows,
                args.manifest,
                lambda t: load_target(t, settings),
                progress=bar.update,
            )
    finally:
        checker.catalog.close()
    dups = sum(p.is_duplicate for p in preds.values())
    print(json.dumps({"videos": len(preds), "duplicates": dups}))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import tempfile

    from tqdm import tqdm

    from vdup.evaluate import per_kind, read_manifest, run, score, write_predictions
    from vdup.runtime import build_checker

    rows = read_manifest(args.manifest)
    with tempfile.TemporaryDirectory(prefix="vdup-eval-") as tmp:
        if args.data is None:
            args.data = Path(tmp)
        settings = _settings(args)
        extractor = None
        if args.cache is not None:
            from vdup.calibrate import CachedExtractor
            from vdup.runtime import build_extractor

            extractor = CachedExtractor(build_extractor(settings), args.cache, args.manifest)
        checker = build_checker(settings, extractor=extractor)
        t0 = time.perf_counter()
        try:
            with tqdm(total=len(rows), unit="video", file=sys.stderr) as bar:
                preds = run(
                    checker,
                    rows,
                    args.manifest,
                    lambda t: load_target(t, settings),
                    progress=bar.update,
                )
        finally:
            checker.catalog.close()
        wall = time.perf_counter() - t0
    if args.out:
        write_predictions(args.out, rows, preds)
    kinds = per_kind(rows, preds)
    if kinds:
        print(f"{'kind':<16}{'rows':>6}{'correct':>9}{'share':>8}")
        for kind, n, good, share in kinds:
            print(f"{kind:<16}{n:>6}{good:>9}{share:>8.3f}")
    result = score(rows, preds)
    result["wall_s"] = round(wall, 1)
    result["extractor"] = "triton" if settings.triton_url else "embedded"
    print(json.dumps(result))
    return 0


def _models_install(args: argparse.Namespace) -> int:
    from vdup.settings import Settings
    from vdup.triton.repository import install

    settings = Settings()
    dest = args.dest or settings.model_sources
    for line in install(dest, settings.sscd_model, settings.model_sources):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
