"""Prepare the heavy test artefacts with visible progress before pytest starts (cached by version):
the bundled engine and the synthesized SD1.5 checkpoint. The fixtures would make them too, silently."""

import subprocess
import sys
from pathlib import Path

from runtimes.engine.install import BundledEngine
from tests.support.paths import CHECKPOINT, ENGINE_HOME


def main() -> None:
    install = BundledEngine.under(ENGINE_HOME).ensure()
    if not CHECKPOINT.exists():
        print(f"Synthesizing a random-weight SD1.5 checkpoint into {CHECKPOINT} (once)", flush=True)
        script = Path(__file__).parent / "support" / "make_random_sd15.py"
        subprocess.run([str(install.python), str(script), str(install.comfyui_dir), str(CHECKPOINT)], check=True)
    print(f"Test engine: {install.comfyui_dir} (ComfyUI {install.version}); checkpoint: {CHECKPOINT.name}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
