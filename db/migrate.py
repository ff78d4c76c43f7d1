"""Schema migrations with Alembic, driven from code: the app calls upgrade_to_head(url) at every start.

New revision after a model change (from the repo root, against a database at head; then review the file it
writes, `ruff check --fix` and `ruff format` it):
    python -m db.migrate revision "sqlite:////tmp/dev.db" -m "add runs.priority" --rev-id 0002
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from db.session import create_db_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR.as_posix())
    # Files named 0002_<slug>.py when given --rev-id 0002, like the first one.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        # ConfigParser interpolates '%': a password like 'p%40ss' must reach the engine unchanged.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_to_head(url: str) -> None:
    """Bring the database at `url` to the newest schema; a no-op (one small query) when it is already there."""
    config = alembic_config(url)
    heads = set(ScriptDirectory.from_config(config).get_heads())
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            # Checked here rather than through env.py: at every start the common case is "nothing to do".
            if set(MigrationContext.configure(connection).get_current_heads()) == heads:
                return
            connection.rollback()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m db.migrate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upgrade", help="upgrade the database to the newest revision")
    up.add_argument("url")
    rev = sub.add_parser("revision", help="autogenerate a revision from the models' difference with the database")
    rev.add_argument("url", help="a database at head, compared with the models")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--rev-id", help="e.g. 0002 (default: a random id)")
    args = parser.parse_args(argv)
    if args.cmd == "upgrade":
        upgrade_to_head(args.url)
    else:
        command.revision(alembic_config(args.url), message=args.message, autogenerate=True, rev_id=args.rev_id)


if __name__ == "__main__":
    main()
