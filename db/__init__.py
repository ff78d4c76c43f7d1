"""Database layer (SQLAlchemy models, sessions, migrations): arrives with the service issue."""
