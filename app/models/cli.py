"""`python launch.py [--data-dir D] models pull WORKFLOW_FILE|SLUG [--source FILE=hf://...]... [--force]` and
`models list`: straight on the models folder and the database (like `keys`), whether or not the server runs.

Only the options are defined at import (launch.py builds its parser before it starts the engines)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO


def add_models_command(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="fetch the model files apps need; list what the engines have")
    actions = models.add_subparsers(dest="models_action", required=True)
    pull = actions.add_parser("pull", help="fetch the missing model files of a workflow file or a published app")
    pull.add_argument("target", metavar="WORKFLOW_FILE|SLUG", help="a workflow JSON file, or a published app's slug")
    pull.add_argument("--source", action="append", default=[], metavar="FILE=hf://owner/repo/path[@rev]",
                      help="where a file comes from, over what the workflow says (repeat)")
    pull.add_argument("--force", action="store_true", help="fetch again even the files already there")
    listing = actions.add_parser("list", help="what the models folders hold, and what each published app needs")
    for action in (pull, listing):
        action.add_argument("--models-dir", type=Path, metavar="DIR",
                            help="the models folder to fill or list (default: the managed engines', "
                                 "DATA_DIR/comfyui/models); a ComfyUI's own when the app runs it by --comfyui-url")


def run_models(args: argparse.Namespace, db_url: str) -> int:
    from app.errors import AppError
    from runtimes.engine.manager import EngineSettings

    managed = EngineSettings(data_dir=args.data_dir.expanduser().resolve()).models_dir
    models_dir = args.models_dir.expanduser().resolve() if args.models_dir else managed
    assert models_dir is not None  # an app's own engines always have their folder
    try:
        if args.models_action == "list":
            return _list(models_dir, db_url)
        return _pull(args, models_dir, db_url)
    except (AppError, ValueError) as exc:
        detail = getattr(exc, "detail", None)
        print(f"error: {exc if not isinstance(detail, dict) else json.dumps(detail, indent=2)}", file=sys.stderr)
        return 1


def _with_session(db_url: str, work):  # type: ignore[no-untyped-def]
    from db.migrate import upgrade_to_head
    from db.session import create_db_engine, make_session_factory

    upgrade_to_head(db_url)
    engine = create_db_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return work(session)
    finally:
        engine.dispose()


def _pull(args: argparse.Namespace, models_dir: Path, db_url: str) -> int:
    from app.models.needs import needs_of_app, needs_of_workflow, parse_sources
    from runtimes.models.hub_fetch import ModelFetchError, fetch_model

    given = parse_sources(args.source)
    path = Path(args.target).expanduser()
    if path.is_file():
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a workflow JSON file ({exc})") from exc
        needs = needs_of_workflow(raw, models_dir, given)
    elif path.suffix.lower() == ".json" or "/" in args.target:
        raise ValueError(f"no file {path}")
    else:
        needs = _with_session(db_url, lambda session: needs_of_app(session, args.target, models_dir, given))
    if not needs:
        print(f"{args.target} needs no model files.")
        return 0
    failed = 0
    for need in needs:
        label = need.key
        if need.present and not args.force and need.source is None:
            print(f"  ✓ {label} (present)")
            continue
        if need.source is None or need.folder == "unknown":
            failed += 1
            print(f"  ✗ {label}: missing; {need.hint()}")
            continue
        bar = _Bar(label, sys.stderr)
        try:
            outcome = fetch_model(need.source, models_dir, need.folder, need.filename, sha256=need.sha256,
                                  force=args.force, progress=bar.update)
        except ModelFetchError as exc:
            bar.close()
            failed += 1
            print(f"  ✗ {label}: {exc}")
            continue
        bar.close()
        state = "fetched" if outcome.fetched else "present" if outcome.verified else "present (not checked: " \
                                                                                      "the hub is unreachable)"
        print(f"  ✓ {label} ({state}, {_size(outcome.size)})")
    print(f"{len(needs) - failed} of {len(needs)} model file(s) in {models_dir}" +
          (f"; {failed} missing" if failed else ""))
    return 1 if failed else 0


def _list(models_dir: Path, db_url: str) -> int:
    from app.models.needs import needs_of_all_apps
    from runtimes.models.store import list_models

    stored = list_models(models_dir)
    print(f"Models folder: {models_dir}")
    for model in stored:
        print(f"  {model.folder}/{model.name}  {_size(model.size)}")
    if not stored:
        print("  (empty)")
    apps = _with_session(db_url, lambda session: needs_of_all_apps(session, models_dir))
    for slug, needs in apps.items():
        missing = [n for n in needs if not n.present]
        print(f"App {slug}: {len(needs)} model file(s), " + (f"{len(missing)} missing" if missing else "all present"))
        for need in needs:
            print(f"  {'✓' if need.present else '✗'} {need.key}" +
                  ("" if need.present else f": {need.hint()}"))
    missing_any = any(not n.present for needs in apps.values() for n in needs)
    if missing_any:
        print("Fetch what is missing: python launch.py models pull SLUG")
    return 0


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


class _Bar:
    """A one-line progress bar on a terminal; on anything else a line every quarter (logs stay short)."""

    WIDTH = 30

    def __init__(self, label: str, out: TextIO) -> None:
        self.label, self.out = label, out
        self.tty = out.isatty()
        self.shown = -1
        self.last = 0.0

    def update(self, done: int, total: int | None) -> None:
        fraction = done / total if total else 0.0
        if self.tty:
            now = time.monotonic()
            if now - self.last < 0.1 and done != total:
                return
            self.last = now
            filled = int(self.WIDTH * fraction)
            self.out.write(f"\r  {self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction:4.0%} "
                           f"{_size(done)} / {_size(total)}")
        elif (quarter := int(fraction * 4)) > self.shown:
            self.shown = quarter
            self.out.write(f"  {self.label}: {fraction:.0%} of {_size(total)}\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.out.write("\n")
            self.last = 0.0
        self.out.flush()
