"""The GPU check (issue 14 §4): the bundled engine on a GPU, bare and through the Modal snapshot hand-over, timed,
with NVML's readings. `python -m bench.gpu_check --help`; bench/README.md says how to run it on the device machine.

carry (what travels to the device machine), phases (the two measured phases), gpus (NVML), report (table, JSON).
"""
