"""Finds the cycles of a workflow's links: the engine cannot order such nodes and fails without naming them."""

from __future__ import annotations

from collections.abc import Iterable

from .workflow import Workflow, is_link, node_sort_key


def _sources(workflow: Workflow, node_id: str) -> list[str]:
    return [value[0] for value in workflow.inputs(node_id).values() if is_link(value) and value[0] in workflow]


def find_cycles(workflow: Workflow, node_ids: Iterable[str]) -> list[tuple[str, ...]]:
    """Each group of nodes (among `node_ids`) that feed one another, sorted; a node linked to itself counts.

    Tarjan's strongly connected components, iterative so that a long chain cannot exhaust the stack.
    """
    scope = set(node_ids)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[tuple[str, ...]] = []
    for root in sorted(scope, key=node_sort_key):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            sources = [s for s in _sources(workflow, node) if s in scope]
            if position < len(sources):
                work.append((node, position + 1))
                source = sources[position]
                if source not in index:
                    work.append((source, 0))
                elif source in on_stack:
                    low[node] = min(low[node], index[source])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in sources:
                    cycles.append(tuple(sorted(group, key=node_sort_key)))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(cycles, key=lambda group: node_sort_key(group[0]))
