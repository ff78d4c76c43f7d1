"""The editor's dynamic prompts (publisher.dynamic_prompts), ported from the frontend's processDynamicPrompt; the
browser oracle (tests/browser/test_frontend_oracle_values.py) checks the port against the real one."""

from __future__ import annotations

import pytest

from publisher.dynamic_prompts import MAX_NESTING, dynamic_prompt, fixed_prompt


@pytest.mark.parametrize(("text", "queued"), [
    ("a cat // on a mat\nin a hat", "a cat \nin a hat"),  # a line comment ends at the line's end
    ("a /* not\nthis */cat", "a cat"),  # a block comment spans lines
    ("http://example.com/x", "http:"),  # the editor cuts this too
    ("\\{literal\\} \\| bar", "{literal} | bar"),
    ("keep \\(weight\\) and \\n", "keep \\(weight\\) and \\n"),  # other escapes stay as written
    ("{only one}", "only one"),
    ("{a{b}c}", "abc"),
    ("ends with \\", "ends with \\undefined"),  # JavaScript's "\\" + undefined
    ("plain", "plain"),
])
def test_a_text_without_a_choice_is_fixed(text: str, queued: str) -> None:
    assert fixed_prompt(text) == queued


@pytest.mark.parametrize("text", ["{a|b}", "x {a|b", "{one|} x", "{a|{b|c}}", "{{a|b}}"])
def test_a_text_with_a_choice_is_left_for_the_run(text: str) -> None:
    assert fixed_prompt(text) is None


def test_each_choice_is_picked_and_processed_in_turn() -> None:
    asked: list[int] = []

    def last(count: int) -> int:
        asked.append(count)
        return count - 1

    assert dynamic_prompt("{red|green|blue} // x\n{big|{tiny|hu\\|ge}}", last) == "blue \nhu|ge"
    assert asked == [3, 2, 2]  # the outer choices, then the one inside the option picked
    assert dynamic_prompt("{a|b /* c|d */}", lambda count: count - 1) == "b "  # comments go before choosing
    assert dynamic_prompt("open {a|b", lambda count: 0) == "open a"


def test_choices_nested_too_deep_are_refused_not_followed() -> None:
    deep = "{" * (MAX_NESTING + 5) + "a" + "}" * (MAX_NESTING + 5)
    with pytest.raises(ValueError, match="nested more than"):
        fixed_prompt(deep)
