"""Start ComfyUI's main.py so that it dies with the app that launched it.

Run by the ENGINE's interpreter (stdlib only: the engine venv does not have this project installed):
    python lifeline.py COMFYUI_DIR [main.py args...]
The app holds the write end of this process's stdin. When the app exits for any reason, SIGKILL
included, the kernel closes that pipe, the read below returns EOF, and the engine exits: no orphan
engine keeps a GPU busy. (PR_SET_PDEATHSIG would fire when the launching *thread* exits instead.)
"""

import os
import runpy
import sys
import threading


def _exit_when_parent_goes() -> None:
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os._exit(0)


def main() -> None:
    comfyui_dir = os.path.abspath(sys.argv[1])
    threading.Thread(target=_exit_when_parent_goes, name="lifeline", daemon=True).start()
    main_py = os.path.join(comfyui_dir, "main.py")
    sys.argv = [main_py, *sys.argv[2:]]
    sys.path.insert(0, comfyui_dir)
    os.chdir(comfyui_dir)
    runpy.run_path(main_py, run_name="__main__")


if __name__ == "__main__":
    main()
