"""The forms' media inputs: an upload component per kind, and the mask editor's drawing turned into the file
LoadImageMask reads (one channel of it: alpha inverted, or a colour)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

from app.forms.components import collect, make_fields
from app.forms.mask import mask_upload
from publisher import AppInput


def _inputs() -> list[AppInput]:
    return [AppInput(node="1", input="image", type="mask", name="mask"),
            AppInput(node="2", input="file", type="video", name="clip"),
            AppInput(node="3", input="audio", type="audio", name="voice"),
            AppInput(node="4", input="image", type="image", name="photo"),
            AppInput(node="5", input="data", type="file", name="doc")]


def test_each_kind_gets_its_upload_component() -> None:
    with gr.Blocks():
        fields = make_fields(_inputs())
    kinds = {f.spec.name: type(f.component) for f in fields}
    assert kinds == {"mask": gr.ImageMask, "clip": gr.Video, "voice": gr.Audio, "photo": gr.Image, "doc": gr.File}


def _editor(tmp_path: Path, painted_box: tuple[int, int, int, int] | None) -> dict[str, object]:
    background = tmp_path / "photo.png"
    Image.new("RGBA", (20, 10), (90, 120, 200, 255)).save(background)
    layer = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    if painted_box is not None:
        layer.paste((0, 0, 0, 255), painted_box)  # the editor's brush: opaque where the user painted
    layer_path = tmp_path / "layer.png"
    layer.save(layer_path)
    return {"background": str(background), "layers": [str(layer_path)], "composite": str(background)}


def test_a_painted_mask_means_the_same_on_every_channel_the_engine_may_read(tmp_path: Path) -> None:
    mask = mask_upload(_editor(tmp_path, (0, 0, 5, 10)))
    assert mask is not None
    name, data = mask
    out = tmp_path / name
    out.write_bytes(data)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (20, 10)
        red, _green, _blue, alpha = image.split()
        # LoadImageMask: alpha -> 1 - alpha; red/green/blue -> the value. Painted: masked on each channel.
        assert (255 - alpha.getpixel((2, 5)), red.getpixel((2, 5))) == (255, 255)
        assert (255 - alpha.getpixel((15, 5)), red.getpixel((15, 5))) == (0, 0)


def test_an_uploaded_mask_left_unpainted_goes_as_it_came(tmp_path: Path) -> None:
    editor = _editor(tmp_path, None)
    assert mask_upload(editor) == ("photo.png", Path(str(editor["background"])).read_bytes())
    assert mask_upload({"background": None, "layers": [], "composite": None}) is None


def test_the_form_sends_the_drawn_mask_as_the_inputs_file(tmp_path: Path) -> None:
    with gr.Blocks():
        fields = make_fields(_inputs()[:1])
    values, files = collect(fields, [_editor(tmp_path, (0, 0, 5, 10))])
    assert values == {} and files["mask"][0] == "photo-mask.png"
