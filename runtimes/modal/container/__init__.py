"""What ships into a deployment's containers: the worker (one engine per container, runs through the same
`execute_run` as the local pool), the endpoint (the app's run API for the one version baked in), async jobs, and
the snapshot helper node. It imports nothing from `runtimes.modal.host` (an import-linter contract holds it)."""
