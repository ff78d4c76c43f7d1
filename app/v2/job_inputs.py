"""A v2 job's inputs as the run service takes them: the values its workflow sets (an app's published inputs) and
the files of its asset references, checked as every run's inputs are (app.runs.inputs): an image is checked as an
image; any file for its size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.runs.inputs import RunInputs
from publisher import AppSpec
from runtimes.files import safe_filename
from runtimes.inputs import ImageLimits, InputProblems, check_image, check_values

IMAGE_KINDS = frozenset({"image", "mask"})


@dataclass(frozen=True)
class JobInputs:
    values: dict[str, Any]
    files: dict[str, tuple[str, bytes]]  # input name -> (file name, bytes)

    def parse(self, spec: AppSpec, limits: ImageLimits) -> RunInputs:
        uploads: dict[str, tuple[str, bytes]] = {}
        problems: list[dict[str, Any]] = []
        for name, (filename, data) in self.files.items():
            item = spec.input(name)
            try:
                if item is not None and item.type in IMAGE_KINDS:
                    uploads[name] = check_image(name, filename, data, limits)
                elif len(data) > limits.max_bytes:
                    problems.append({"input": name, "message": f"the file is larger than "
                                                               f"{limits.max_bytes // 2**20} MiB"})
                else:
                    uploads[name] = (safe_filename(filename, "upload"), data)
            except InputProblems as exc:
                problems += exc.problems
        names = {name: filename for name, (filename, _) in uploads.items()}
        return RunInputs(check_values(spec, self.values, names, problems), uploads, None)
