"""Where a login sends the browser next: a path on this server, never another site."""

from __future__ import annotations

import pytest

from app.auth.web import _safe_next


@pytest.mark.parametrize("target", ["/studio/", "/apps/demo/?x=1", "/studio/#runs"])
def test_a_local_path_is_kept(target: str) -> None:
    assert _safe_next(target) == target


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "/\\/evil.example",
                                    "/\t/evil.example", "\\\\evil.example", "javascript:alert(1)", "studio/", ""])
def test_anything_that_could_leave_the_site_goes_to_the_studio(target: str) -> None:
    assert _safe_next(target) == "/studio/"
