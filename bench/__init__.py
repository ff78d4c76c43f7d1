"""Benchmarks that run against a real ComfyUI engine (see bench/README.md)."""
