"""Pack pins: GIT_URL@COMMIT or REGISTRY_ID@VERSION, their spec form, their folder, and the pins a UI file's
node properties suggest."""

from __future__ import annotations

import pytest

from publisher.node_packs import NodePack, PackPin, PinError, pack_hint, parse_pin, proposed_pin

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(("text", "folder", "form"), [
    (f"https://github.com/owner/ComfyUI-Thing.git@{COMMIT}", "ComfyUI-Thing",
     {"repo": "https://github.com/owner/ComfyUI-Thing.git", "commit": COMMIT}),
    (f"git@github.com:owner/thing@{COMMIT.upper()}", "thing", {"repo": "git@github.com:owner/thing", "commit": COMMIT}),
    (f"ssh://git@host/x/pack/@{COMMIT}", "pack", {"repo": "ssh://git@host/x/pack/", "commit": COMMIT}),
    (f"file:///tmp/packs/local_pack@{COMMIT}", "local_pack",
     {"repo": "file:///tmp/packs/local_pack", "commit": COMMIT}),
    ("comfyui-impact-pack@8.15.3", "comfyui-impact-pack", {"registry": "comfyui-impact-pack", "version": "8.15.3"}),
])
def test_a_pin_gives_its_spec_form_and_folder(text: str, folder: str, form: dict[str, str]) -> None:
    pin = parse_pin(text)
    assert pin.folder == folder
    assert pin.to_dict() == form
    assert PackPin.from_dict(form) == pin  # the spec's form reads back as the same pin


@pytest.mark.parametrize(("text", "says"), [
    ("https://github.com/owner/thing@0a1b2c3", "abbreviated: give the full 40-hex commit (`git rev-parse 0a1b2c3`"),
    ("https://github.com/owner/thing@main", "is not a commit"),
    ("comfyui-thing@1.2", "must be x.y.z"),
    ("comfyui-thing@latest", "must be x.y.z"),
    ("comfyui-thing", "is no pack pin"),
    ("owner/thing@1.0.0", "a registry id has no '/'"),
    (f"https://github.com/owner/..@{COMMIT}", "not usable as a pack's folder name"),
    ("comfy_publisher@1.0.0", "the app's own editor extension"),
    (f"http://example.com/thing@{COMMIT}", "a registry id has no '/'"),
    (f"--upload-pack=touch@x:y@{COMMIT}", "a registry id has no '/'"),  # never an option to git
    (f"ext::sh -c touch@{COMMIT}", "a registry id has no '/'"),
])
def test_a_bad_pin_says_what_to_write(text: str, says: str) -> None:
    with pytest.raises(PinError) as refused:
        parse_pin(text)
    assert says in str(refused.value)


def test_from_dict_refuses_a_form_it_does_not_know() -> None:
    with pytest.raises(PinError, match="repo and commit, or registry and version"):
        PackPin.from_dict({"url": "x"})


def test_a_ui_files_pack_proposes_a_pin_only_when_exact() -> None:
    assert proposed_pin(NodePack("comfyui-fancy", "1.4.2", registry=True)) == "comfyui-fancy@1.4.2"
    assert proposed_pin(NodePack("someone/gitblur", COMMIT, registry=False)) == \
        f"https://github.com/someone/gitblur@{COMMIT}"
    assert proposed_pin(NodePack("someone/gitblur", "0a1b2c3d", registry=False)) is None  # abbreviated commit
    assert proposed_pin(NodePack("comfyui-fancy", None, registry=True)) is None
    assert NodePack("comfyui-fancy", "1.4.2", registry=True).to_dict()["pin"] == "comfyui-fancy@1.4.2"


def test_a_refusals_hint_gives_the_install_command_when_the_file_pins_exactly() -> None:
    exact = pack_hint({"properties": {"cnr_id": "comfyui-fancy", "ver": "1.4.2"}})
    assert exact == (", provided by the node pack 'comfyui-fancy' version 1.4.2 (Comfy Registry) "
                     "(`python launch.py nodes install comfyui-fancy@1.4.2`)")
    assert "nodes install" not in pack_hint({"properties": {"aux_id": "someone/x", "ver": "0a1b2c3"}})
