"""Comfy Publisher's memory-snapshot helper, part 1 (runs before ComfyUI imports its model code).

While a Modal memory snapshot is taken the container has no GPU, so the engine starts with CUDA hidden
(CUDA_VISIBLE_DEVICES=""). ComfyUI's `get_torch_device()` would then ask CUDA for its current device and
crash. This import hook patches that one function in memory (never on disk): with CUDA hidden it answers
the CPU, otherwise it does what it always did. The engine keeps its GPU mode, so once CUDA is shown again
(see __init__.py) the first model load goes to the GPU.
"""

import importlib.abc
import importlib.machinery
import os
import sys

# ComfyUI 0.3.75 also imports it as a top-level module (comfy/ldm/hunyuan_video/upsampler.py).
_TARGETS = frozenset({"comfy.model_management", "model_management"})
_ORIGINAL = "def get_torch_device():"
_PATCHED = (
    "def get_torch_device():\n"
    "    if __import__('os').environ.get('CUDA_VISIBLE_DEVICES') == '':\n"
    "        return torch.device('cpu')\n"
    "    return _comfy_publisher_get_torch_device()\n\n"
    "def _comfy_publisher_get_torch_device():"
)


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):  # type: ignore[override]
        # Always from the source: a .pyc of the original (any normal start of the engine writes one) would be
        # loaded instead, unpatched; and the patched code is never written to the cache.
        return self.source_to_code(self.get_data(self.path), self.path)

    def source_to_code(self, data, path, *, _optimize=-1):  # type: ignore[override]
        source = data.decode("utf-8") if isinstance(data, bytes) else data
        if _ORIGINAL not in source:
            print("[comfy-publisher] get_torch_device() not found: snapshot patch not applied", flush=True)
            return super().source_to_code(data, path)
        return super().source_to_code(source.replace(_ORIGINAL, _PATCHED, 1), path)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in _TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return spec
        spec.loader = _PatchingLoader(fullname, spec.origin)
        spec.cached = None
        return spec


if os.environ.get("COMFY_PUBLISHER_SNAPSHOT") == "1" and not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder())
    print("[comfy-publisher] snapshot mode: CUDA may be hidden at start and shown later", flush=True)
