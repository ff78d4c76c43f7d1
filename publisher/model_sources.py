"""Where a UI-format file says its model files come from: the editor's ``properties.models`` on a loader node,
``[{"name": file, "url": address, "directory": models/ folder}]``, as the engine's templates write it (385 loader
nodes of comfyui-workflow-templates 0.7.25 carry it).

A Hugging Face file address becomes an ``hf://owner/repo/path[@revision]`` source, the form an app's
``model_sources`` take; any other address is left out (files are fetched only from the Hub, and only from the
source a file or a publisher names).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from .models import HF_SOURCE, ModelRef, with_sources

# https://huggingface.co/owner/repo/resolve/<revision>/<path>?download=true (or /blob/: the file's page)
_HUB_FILE = re.compile(r"^https://huggingface\.co/(?P<repo>[^/\s]+/[^/\s]+)/(?:resolve|blob)/(?P<rev>[^/\s]+)/"
                       r"(?P<file>[^?#\s]+)")
DEFAULT_REVISION = "main"


def hf_source_of(url: object) -> str | None:
    """The hf:// source for a Hugging Face file address (an hf:// source as it is); None for anything else."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if HF_SOURCE.match(url):
        return url
    found = _HUB_FILE.match(url)
    if found is None:
        return None
    revision = unquote(found["rev"])
    source = f"hf://{found['repo']}/{unquote(found['file'])}" + ("" if revision == DEFAULT_REVISION else
                                                                 f"@{revision}")
    return source if HF_SOURCE.match(source) else None


def _all_nodes(data: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The file's nodes and those of its subgraph definitions."""
    definitions = data.get("definitions")
    subgraphs = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
    graphs = [data, *(s for s in subgraphs if isinstance(s, Mapping))] if isinstance(subgraphs, list) else [data]
    for graph in graphs:
        nodes = graph.get("nodes")
        yield from (node for node in nodes if isinstance(node, Mapping)) if isinstance(nodes, list) else ()


def declared_sources(data: Mapping[str, Any]) -> dict[str, str]:
    """``"folder/file"`` and ``"file"`` -> hf:// source, for each Hugging Face file the file's nodes declare in
    ``properties.models`` (read leniently: an entry without a name or a Hub address is skipped)."""
    found: dict[str, str] = {}
    for node in _all_nodes(data):
        properties = node.get("properties")
        models = properties.get("models") if isinstance(properties, Mapping) else None
        for entry in models if isinstance(models, list) else ():
            if not isinstance(entry, Mapping) or not isinstance(name := entry.get("name"), str) or not name:
                continue
            if (source := hf_source_of(entry.get("url"))) is None:
                continue
            directory = entry.get("directory")
            if isinstance(directory, str) and directory:
                found.setdefault(f"{directory}/{name}", source)
            found.setdefault(name, source)
    return found


def sources_for(refs: list[ModelRef], declared: Mapping[str, str]) -> dict[str, str]:
    """``model_sources`` for the files the workflow uses that the file declares (by folder and name, else by name:
    a file may list a text encoder under "clip" that the engine's loader reads from "text_encoders")."""
    chosen = {}
    for ref in refs:
        source = declared.get(f"{ref.folder}/{ref.filename}") or declared.get(ref.filename)
        if source is not None:
            chosen[f"{ref.folder}/{ref.filename}"] = source
    return chosen


def sourced_models(refs: list[ModelRef], declared: Mapping[str, str], given: Mapping[str, str],
                   problems: list[str]) -> list[ModelRef]:
    """The refs with their sources: those `given` by the publisher (checked, what does not fit added to
    `problems`), else those the file `declared`."""
    return with_sources(refs, {**sources_for(refs, declared), **given}, problems)
