"""NVML readings of every GPU during the check's phases: utilisation and memory, sampled in a thread.

Reads NVML through nvidia-ml-py (`pynvml`), as the app's /metrics does (app/metrics.py:GpuCollector, which this
cannot import on the device machine: the app's web dependencies are not there). Where NVML cannot start (no driver,
no GPU, no nvidia-ml-py) every reading is replaced by one sentence saying so, never an error.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

MIB = 2**20


class GpuSampler:
    """Samples each GPU every `interval` s into the phase named by the last `phase()` call."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.skipped: str | None = None
        self.sample_error: str | None = None  # why sampling stopped early, if it did
        self.gpus: list[dict[str, Any]] = []
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._phase = "idle"
        self._samples: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # phase -> (gpu, util %, used)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> GpuSampler:
        try:
            import pynvml
        except ImportError:
            self.skipped = "skipped: no GPU readings (nvidia-ml-py is not installed)"
            return self
        try:
            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            driver = _text(pynvml.nvmlSystemGetDriverVersion())
            for index, handle in enumerate(self._handles):
                self.gpus.append({"index": index, "name": _text(pynvml.nvmlDeviceGetName(handle)),
                                  "memory_total_mib": pynvml.nvmlDeviceGetMemoryInfo(handle).total // MIB,
                                  "driver": driver})
        except pynvml.NVMLError as exc:
            self.skipped = f"skipped: no GPU (NVML: {exc})"
            return self
        if not self._handles:
            self.skipped = "skipped: no GPU (NVML lists none)"
            return self
        self._nvml = pynvml
        self._thread = threading.Thread(target=self._sample_loop, name="nvml-sampler", daemon=True)
        self._thread.start()
        return self

    def phase(self, name: str) -> None:
        self._phase = name

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None

    def process_memory_mib(self, pid: int | None) -> dict[str, int] | str:
        """GPU memory held by one process (the engine), per GPU, from NVML's list of compute processes. A PID
        namespace can hide the process from NVML: then the answer says so."""
        if self._nvml is None:
            return self.skipped or "skipped: NVML stopped"
        held: dict[str, int] = {}
        try:
            for index, handle in enumerate(self._handles):
                for process in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if process.pid == pid and process.usedGpuMemory is not None:
                        held[str(index)] = process.usedGpuMemory // MIB
        except self._nvml.NVMLError as exc:  # some virtualised GPUs do not list processes
            return f"NVML could not list the GPU's processes: {exc}"
        return held or f"process {pid} not in NVML's list (another PID namespace, or no GPU memory)"

    def summary(self) -> dict[str, Any]:
        """Per phase and GPU: utilisation max/mean (%) and memory used max (MiB), with the sample count."""
        if self.skipped:
            return {"skipped": self.skipped}
        phases: dict[str, Any] = {}
        for phase, samples in self._samples.items():
            per_gpu: dict[str, Any] = {}
            for index in range(len(self._handles)):
                mine = [(util, used) for gpu, util, used in samples if gpu == index]
                if mine:
                    utils = [util for util, _ in mine]
                    per_gpu[str(index)] = {
                        "util_max_pct": max(utils), "util_mean_pct": round(sum(utils) / len(utils), 1),
                        "memory_used_max_mib": max(used for _, used in mine) // MIB, "samples": len(mine)}
            phases[phase] = per_gpu
        return {"gpus": self.gpus, "phases": phases, "interval_s": self.interval,
                **({"sample_error": self.sample_error} if self.sample_error else {})}

    def _sample_loop(self) -> None:
        nvml = self._nvml
        while not self._stop.wait(self.interval):
            phase = self._phase
            try:
                for index, handle in enumerate(self._handles):
                    util = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                    used = nvml.nvmlDeviceGetMemoryInfo(handle).used
                    self._samples[phase].append((index, util, used))
            except Exception as exc:  # a GPU lost, or a reading this GPU does not support: keep what was read
                self.sample_error = f"{type(exc).__name__}: {exc}"
                return


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

