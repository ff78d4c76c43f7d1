"""The editor's dynamic prompts: what ComfyUI's frontend does to a text widget whose input says ``dynamicPrompts``.

When it queues, the frontend's ``Comfy.DynamicPrompts`` extension passes such a widget's value through
``processDynamicPrompt`` (comfyui-frontend-package 1.32.9, shared-frontend-utils/formatUtil.ts), ported here:

- C-style comments go: ``/* … */`` (across lines) and ``// …`` to the end of the line;
- ``{a|b|c}`` becomes one of its options, picked at random, and the option is processed the same way (so choices
  nest); ``{a}`` is ``a``; an unclosed ``{`` runs to the end of the text;
- a backslash keeps the character after it from being read (``\\{`` is no choice); at the end ``\\{``, ``\\}`` and
  ``\\|`` lose their backslash, every other ``\\x`` stays as it is (a trailing backslash becomes ``\\undefined``, as
  JavaScript writes the missing character).

A text without a choice of two or more options always comes out the same: :func:`fixed_prompt` gives that result
(the converter writes it, as the editor would queue it); a text with one is left for each run to pick
(:func:`dynamic_prompt`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

DYNAMIC_PROMPTS = "dynamicPrompts"  # the input option that turns it on (CLIPTextEncode's text and others)
MAX_NESTING = 200  # choices inside chosen options: each level is one more call, as in the frontend

_COMMENTS = re.compile(r"/\*[\s\S]*?\*/|//[^\n\r\u2028\u2029]*")  # JavaScript's "." stops at these line ends
_UNESCAPE = re.compile(r"\\([{}|])")

Choose = Callable[[int], int]  # how many options -> the index of the one picked


class _Random(Exception):
    """The text holds a choice: its result differs from run to run."""


def _process(text: str, choose: Choose | None, depth: int) -> str:
    if depth > MAX_NESTING:
        raise ValueError(f"its {{…|…}} choices are nested more than {MAX_NESTING} deep")
    text = _COMMENTS.sub("", text)
    at = 0

    def escaped() -> str:
        nonlocal at
        following = text[at] if at < len(text) else "undefined"  # JavaScript: "\\" + undefined
        at += 1
        return "\\" + following

    def choice_block() -> str:
        nonlocal at
        options: list[str] = []
        choice, nesting = "", 0
        while at < len(text):
            char = text[at]
            at += 1
            if char == "\\":
                choice += escaped()
                continue
            if char == "{":
                nesting += 1
            elif char == "}":
                if not nesting:
                    break
                nesting -= 1
            elif char == "|" and not nesting:
                options.append(choice)
                choice = ""
                continue
            choice += char
        options.append(choice)
        if len(options) > 1 and choose is None:
            raise _Random
        picked = options[choose(len(options)) if len(options) > 1 and choose is not None else 0]
        return _process(picked, choose, depth + 1)

    result: list[str] = []
    while at < len(text):
        char = text[at]
        at += 1
        if char == "\\":
            result.append(escaped())
        elif char == "{":
            result.append(choice_block())
        else:
            result.append(char)
    return _UNESCAPE.sub(r"\1", "".join(result))


def fixed_prompt(text: str) -> str | None:
    """What the editor queues for `text` when that never changes (no choice between options), else None."""
    try:
        return _process(text, None, 0)
    except _Random:
        return None


def dynamic_prompt(text: str, choose: Choose) -> str:
    """What the editor queues for `text` this time, each choice picked by `choose`; ValueError when its choices
    nest too deep to follow."""
    return _process(text, choose, 0)
