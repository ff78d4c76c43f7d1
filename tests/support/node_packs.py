"""Node packs for the tests, made for real: a git repository, committed, so it has a commit to pin (the loopback
Comfy Registry, tests/support/comfy_registry.py, zips a pack's files itself)."""

from __future__ import annotations

import subprocess
from pathlib import Path

# A node that needs einops (already in the engine's venv, so installing it changes nothing there) and torch.
GOOD_INIT = '''
import einops


class PackInvert:
    """1 - image, through einops so the requirement is really used."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"
    CATEGORY = "test pack"

    def invert(self, image):
        return (1.0 - einops.rearrange(image, "b h w c -> b h w c"),)


NODE_CLASS_MAPPINGS = {"PackInvert": PackInvert}
'''
BROKEN_INIT = "import definitely_missing_module_for_a_test_pack\nNODE_CLASS_MAPPINGS = {}\n"
GOOD_NODE = "PackInvert"
MISSING_MODULE = "definitely_missing_module_for_a_test_pack"


def git_pack(parent: Path, name: str, files: dict[str, str]) -> str:
    """A git repository `parent/name` holding `files`, committed; returns its pin file://…@<commit>."""
    repo = parent / name
    repo.mkdir(parents=True)
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the pack"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return f"{repo.as_uri()}@{commit}"

