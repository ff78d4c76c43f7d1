"""Database layer: SQLAlchemy models (models), engines and sessions (session), Alembic migrations (migrate),
and keyword-only CRUD functions per resource (crud_apps, crud_runs, crud_keys). Imports nothing else of the app."""
