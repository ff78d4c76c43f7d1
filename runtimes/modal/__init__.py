"""Serverless runtime on Modal: `host/` runs on the user's machine (settings, generate, deploy, the runner that
sends runs to a deployment), `container/` ships into the deployment (worker, endpoint, jobs), and `wire.py`, the
JSON both sides exchange, goes with it."""
