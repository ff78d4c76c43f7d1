"""Serverless runtime on RunPod: `host/` runs on the user's machine (settings, the generated bundle, RunPod's
REST API for templates and endpoints, the runner that sends runs to an endpoint), `container/` ships into the
worker image (the handler the runpod SDK serves)."""
