"""The typed view of the engine's /object_info, checked on the real engine's specs."""

from __future__ import annotations

from typing import Any

from publisher import InputSpec, NodeCatalog, parse_input_spec, parse_node_schema

SEED_MAX = 0xFFFFFFFFFFFFFFFF


def test_catalog_holds_every_engine_node(catalog: NodeCatalog, object_info: dict[str, Any]) -> None:
    assert len(catalog) == len(object_info)
    assert "KSampler" in catalog
    assert "NoSuchNode" not in catalog
    assert catalog.get("NoSuchNode") is None
    assert set(catalog) == set(object_info)


def test_ksampler_inputs_in_engine_order(catalog: NodeCatalog) -> None:
    ks = catalog["KSampler"]
    assert ks.display_name == "KSampler"
    assert ks.category == "sampling"
    assert ks.input_names == (
        "model",
        "seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "positive",
        "negative",
        "latent_image",
        "denoise",
    )
    assert ks.outputs == ("LATENT",)
    assert ks.output_names == ("LATENT",)
    assert ks.output_node is False


def test_ksampler_seed_range_and_generator_flag(catalog: NodeCatalog) -> None:
    seed = catalog["KSampler"].input("seed")
    assert seed is not None
    assert (seed.type, seed.required, seed.default, seed.min, seed.max) == ("INT", True, 0, 0, SEED_MAX)
    assert seed.control_after_generate is True
    assert seed.is_widget and not seed.is_link_type
    steps = catalog["KSampler"].input("steps")
    assert steps is not None and steps.control_after_generate is False


def test_ksampler_float_and_combo_and_link_inputs(catalog: NodeCatalog) -> None:
    ks = catalog["KSampler"]
    cfg = ks.input("cfg")
    assert cfg is not None and (cfg.type, cfg.default, cfg.min, cfg.max, cfg.step) == (
        "FLOAT",
        8.0,
        0.0,
        100.0,
        0.1,
    )
    sampler = ks.input("sampler_name")
    assert sampler is not None and sampler.type == "COMBO"
    assert sampler.choices[0] == "euler" and "dpmpp_2m" in sampler.choices
    model = ks.input("model")
    assert model is not None and model.type == "MODEL" and model.is_link_type and not model.is_widget
    assert model.tooltip == "The model used for denoising the input latent."


def test_clip_text_encode_is_multiline(catalog: NodeCatalog) -> None:
    text = catalog["CLIPTextEncode"].input("text")
    assert text is not None and (text.type, text.multiline) == ("STRING", True)
    assert catalog["CLIPTextEncode"].outputs == ("CONDITIONING",)
    prefix = catalog["SaveImage"].input("filename_prefix")
    assert prefix is not None and (prefix.type, prefix.multiline, prefix.default) == (
        "STRING",
        False,
        "ComfyUI",
    )


def test_load_image_is_an_image_upload_combo(catalog: NodeCatalog, object_info: dict[str, Any]) -> None:
    image = catalog["LoadImage"].input("image")
    assert image is not None
    assert (image.type, image.image_upload, image.upload) == ("COMBO", True, "image")
    # The choices are whatever files the engine's input folder holds: compare with the engine's own list.
    assert image.choices == tuple(object_info["LoadImage"]["input"]["required"]["image"][0])
    assert catalog["LoadImage"].outputs == ("IMAGE", "MASK")


def test_checkpoint_name_is_a_combo_of_engine_files(
    catalog: NodeCatalog, object_info: dict[str, Any]
) -> None:
    ckpt = catalog["CheckpointLoaderSimple"].input("ckpt_name")
    assert ckpt is not None and ckpt.type == "COMBO" and ckpt.required
    assert ckpt.choices == tuple(object_info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0])
    assert catalog["CheckpointLoaderSimple"].outputs == ("MODEL", "CLIP", "VAE")


def test_new_style_combo_reads_options(catalog: NodeCatalog) -> None:
    fmt = catalog["SaveVideo"].input("format")
    assert fmt is not None and (fmt.type, fmt.default) == ("COMBO", "auto")
    assert "mp4" in fmt.choices
    assert catalog["SaveVideo"].output_node is True


def test_output_nodes_and_hidden_inputs(catalog: NodeCatalog) -> None:
    save = catalog["SaveImage"]
    assert save.output_node is True and save.outputs == ()
    assert save.hidden_inputs == ("prompt", "extra_pnginfo")
    assert "prompt" not in save.input_names


def test_optional_inputs_follow_required(catalog: NodeCatalog) -> None:
    cn = catalog["ControlNetApplyAdvanced"]
    assert cn.input_names[-1] == "vae"
    vae = cn.input("vae")
    assert vae is not None and vae.required is False
    assert cn.output_names == ("positive", "negative")


def test_parse_spec_shapes_without_options() -> None:
    assert parse_input_spec("m", ["MODEL"], required=True) == InputSpec(name="m", type="MODEL", required=True)
    legacy = parse_input_spec("c", [["a", "b"]], required=False)
    assert (legacy.type, legacy.choices, legacy.required) == ("COMBO", ("a", "b"), False)
    bare = parse_input_spec("p", "PROMPT", required=False)
    assert bare.type == "PROMPT"
    junk = parse_input_spec("x", ["INT", "not a dict"], required=True)
    assert (junk.type, junk.min, junk.default) == ("INT", None, None)
    combo_no_options = parse_input_spec("y", ["COMBO"], required=True)
    assert (combo_no_options.type, combo_no_options.choices) == ("COMBO", ())


def test_parse_spec_flags() -> None:
    spec = parse_input_spec(
        "floats", ["FLOATS", {"default": -1, "min": -1, "forceInput": True, "tooltip": "t"}], required=True
    )
    assert spec.force_input and spec.tooltip == "t" and spec.min == -1
    forced_int = parse_input_spec("n", ["INT", {"forceInput": True}], required=True)
    assert forced_int.is_widget is False
    video = parse_input_spec("file", ["COMBO", {"options": ["a.mp4"], "video_upload": True}], required=True)
    assert (video.upload, video.image_upload, video.choices) == ("video", False, ("a.mp4",))
    # bools are not numbers for min/max
    weird = parse_input_spec("w", ["INT", {"min": True, "max": 5}], required=True)
    assert (weird.min, weird.max) == (None, 5)


def test_parse_node_schema_tolerates_missing_fields() -> None:
    schema = parse_node_schema("Custom", {"output": ["IMAGE", ["a", "b"]]})
    assert schema.display_name == "Custom"
    assert schema.inputs == ()
    assert schema.outputs == ("IMAGE", "COMBO")  # a list-typed output is a combo
    assert schema.output_names == ("IMAGE", "COMBO")
    assert schema.output_node is False


def test_input_order_is_authoritative() -> None:
    info = {
        "input": {"required": {"b": ["INT"], "a": ["FLOAT"]}, "optional": {"z": ["IMAGE"]}},
        "input_order": {"required": ["a", "b"]},
        "output_node": True,
    }
    schema = parse_node_schema("N", info)
    assert schema.input_names == ("a", "b", "z")
    assert schema.output_node is True


def test_catalog_skips_malformed_entries() -> None:
    catalog = NodeCatalog.from_object_info({"Good": {"input": {}}, "Bad": "oops"})
    assert "Good" in catalog and "Bad" not in catalog
