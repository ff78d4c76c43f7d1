"""Load tests of a published app with Locust: the locustfile (locustfile), the run (runner), the report (report,
plots) and `launch.py loadtest` (cli). Light at import: each module imports what it needs."""
