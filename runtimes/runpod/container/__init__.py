"""What ships into a RunPod worker image: the handler (`handler.serve`), which runs each job on the worker's one
engine through the shared serverless worker (runtimes/serverless/worker.py). It imports nothing of
`runtimes.runpod.host` nor of `runtimes.modal`."""
