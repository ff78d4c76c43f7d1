"""What the serverless targets (`runtimes/modal/`, `runtimes/runpod/`) share: the container's one-engine worker, the
JSON a deployment's caller and its worker exchange, and which project files an image ships."""
