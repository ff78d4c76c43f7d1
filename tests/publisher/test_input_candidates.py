"""Candidate inputs: typed from the real engine schema, with the suggested ones pre-marked."""

from __future__ import annotations

from publisher import CandidateInput, NodeCatalog, find_candidates, load_workflow, suggested_candidates
from tests.publisher.helpers import fixture_workflow, shipped_workflow

SEED_MAX = 0xFFFFFFFFFFFFFFFF


def _by_key(candidates: list[CandidateInput]) -> dict[str, CandidateInput]:
    return {c.key: c for c in candidates}


def test_txt2img_every_literal_input_in_order(catalog: NodeCatalog) -> None:
    keys = [c.key for c in find_candidates(shipped_workflow("txt2img_sd15.json"), catalog)]
    assert keys == [
        "3.seed",
        "3.steps",
        "3.cfg",
        "3.sampler_name",
        "3.scheduler",
        "3.denoise",
        "4.ckpt_name",
        "5.width",
        "5.height",
        "5.batch_size",
        "6.text",
        "7.text",
        "9.filename_prefix",
    ]


def test_txt2img_suggested_set_and_labels(catalog: NodeCatalog) -> None:
    suggested = suggested_candidates(shipped_workflow("txt2img_sd15.json"), catalog)
    assert {c.key: c.label for c in suggested} == {
        "3.seed": "KSampler seed",
        "3.steps": "KSampler steps",
        "3.cfg": "KSampler CFG",
        "3.denoise": "KSampler denoise",
        "4.ckpt_name": "Load Checkpoint",
        "5.width": "Empty Latent Image width",
        "5.height": "Empty Latent Image height",
        "5.batch_size": "Empty Latent Image batch size",
        "6.text": "Prompt",
        "7.text": "Negative prompt",
    }


def test_txt2img_types_ranges_and_defaults(catalog: NodeCatalog) -> None:
    c = _by_key(find_candidates(shipped_workflow("txt2img_sd15.json"), catalog))
    seed = c["3.seed"]
    assert (seed.type, seed.randomize, seed.default, seed.min, seed.max) == (
        "seed",
        True,
        156680208700286,
        0,
        SEED_MAX,
    )
    assert seed.reason == "random seed; a new one is drawn for each run unless given"
    assert (c["3.steps"].type, c["3.steps"].min, c["3.steps"].max, c["3.steps"].default) == (
        "int",
        1,
        10000,
        20,
    )
    cfg = c["3.cfg"]
    assert (cfg.type, cfg.default, cfg.step, cfg.randomize) == ("float", 8.0, 0.1, False)
    assert isinstance(cfg.default, float)  # the export writes 8; the float input reports 8.0
    assert c["3.sampler_name"].type == "choice" and "euler" in c["3.sampler_name"].choices
    assert not c["3.sampler_name"].suggested and c["3.sampler_name"].reason == ""
    assert c["4.ckpt_name"].type == "choice" and c["4.ckpt_name"].reason == "checkpoint choice"
    assert (c["5.width"].step, c["5.width"].reason) == (8, "output size")
    assert c["5.batch_size"].reason == "batch size"
    prompt = c["6.text"]
    assert (prompt.type, prompt.multiline, prompt.default) == (
        "text",
        True,
        "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
    )
    assert prompt.reason == "positive prompt text of KSampler (node 3)"
    assert c["7.text"].reason == "negative prompt text of KSampler (node 3)"
    assert (c["9.filename_prefix"].type, c["9.filename_prefix"].suggested) == ("text", False)


def test_prompts_traced_through_combine_and_controlnet(catalog: NodeCatalog) -> None:
    c = _by_key(find_candidates(fixture_workflow("txt2img_controlnet_combine.json"), catalog))
    # 6 and 10 are combined into the positive; ControlNetApplyAdvanced passes slot 1 (negative) from 7 only.
    assert c["6.text"].reason == c["10.text"].reason == "positive prompt text of KSampler (node 3)"
    assert c["7.text"].reason == "negative prompt text of KSampler (node 3)"
    assert c["6.text"].label == "Subject"  # a title the user gave wins over "Prompt"
    assert c["10.text"].label == "Prompt"
    assert c["7.text"].label == "Negative prompt"
    # an encoder feeding no sampler is not a prompt
    assert (c["20.text"].suggested, c["20.text"].label) == (False, "CLIP Text Encode (Prompt)")


def test_controlnet_fixture_suggested_set(catalog: NodeCatalog) -> None:
    suggested = {
        c.key for c in suggested_candidates(fixture_workflow("txt2img_controlnet_combine.json"), catalog)
    }
    assert suggested == {
        "3.seed",
        "3.steps",
        "3.cfg",
        "3.denoise",
        "4.ckpt_name",
        "5.width",
        "5.height",
        "5.batch_size",
        "6.text",
        "7.text",
        "10.text",
        "14.image",
    }


def test_load_image_is_an_image_input(catalog: NodeCatalog) -> None:
    c = _by_key(find_candidates(fixture_workflow("img2img.json"), catalog))
    image = c["10.image"]
    assert (image.type, image.label, image.default, image.suggested, image.reason) == (
        "image",
        "Load Image",
        "example.png",
        True,
        "image upload",
    )
    assert (c["3.denoise"].default, c["3.denoise"].suggested) == (0.6, True)
    pose = _by_key(find_candidates(fixture_workflow("txt2img_controlnet_combine.json"), catalog))["14.image"]
    assert (pose.type, pose.label) == ("image", "Pose")


def test_lora_choice_and_strengths(catalog: NodeCatalog) -> None:
    c = _by_key(find_candidates(fixture_workflow("lora.json"), catalog))
    assert (c["10.lora_name"].type, c["10.lora_name"].label, c["10.lora_name"].reason) == (
        "choice",
        "Load LoRA",
        "LoRA choice",
    )
    assert (c["10.strength_model"].label, c["10.strength_model"].reason) == (
        "Load LoRA model strength",
        "LoRA strength",
    )
    assert (c["10.strength_clip"].label, c["10.strength_clip"].min, c["10.strength_clip"].max) == (
        "Load LoRA CLIP strength",
        -100.0,
        100.0,
    )
    assert c["10.strength_model"].suggested and c["10.strength_clip"].suggested


def test_title_mark_suggests_all_inputs_of_the_node(catalog: NodeCatalog) -> None:
    candidates = find_candidates(shipped_workflow("demo_invert.json"), catalog)
    assert [(c.key, c.label, c.suggested) for c in candidates] == [
        ("1.width", "Blank image width", True),
        ("1.height", "Blank image height", True),
        ("1.batch_size", "Blank image batch size", True),
        ("1.color", "Blank image color", True),
        ("3.filename_prefix", "Save Image filename prefix", False),
    ]
    assert candidates[3].reason == "node title starts with '$'"
    assert (candidates[3].type, candidates[3].max) == ("int", 0xFFFFFF)


def test_title_mark_on_a_single_input_node_uses_the_title(catalog: NodeCatalog) -> None:
    wf = fixture_workflow("lora.json").to_prompt()
    wf["7"]["_meta"]["title"] = "$ Avoid"
    c = _by_key(find_candidates(load_workflow(wf), catalog))
    assert c["7.text"].label == "Avoid"
    assert (
        c["7.text"].reason == "negative prompt text of KSampler (node 3)"
    )  # the traced reason is more telling


def test_untitled_image_source_size_is_suggested(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 64, "height": 32, "batch_size": 1, "color": 0},
            },
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
        }
    )
    c = _by_key(find_candidates(wf, catalog))
    assert {k for k, v in c.items() if v.suggested} == {"1.width", "1.height", "1.batch_size"}
    assert c["1.width"].label == "EmptyImage width"  # no title: the engine's display name


def test_seed_typing(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
            "2": {"class_type": "PrimitiveInt", "inputs": {"value": 3}},
            "3": {"class_type": "ImageAddNoise", "inputs": {"image": ["9", 0], "seed": 1, "strength": 0.5}},
        }
    )
    c = _by_key(find_candidates(wf, catalog))
    assert (c["1.noise_seed"].type, c["1.noise_seed"].randomize, c["1.noise_seed"].label) == (
        "seed",
        True,
        "RandomNoise seed",
    )
    # PrimitiveInt has control_after_generate but a signed range: a counter, not a seed.
    assert (c["2.value"].type, c["2.value"].randomize, c["2.value"].suggested) == ("int", False, False)
    assert c["3.seed"].type == "seed"
    assert "3.image" not in c  # links are never candidates


def test_prompt_traced_through_a_string_node(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
            "2": {
                "class_type": "StringConcatenate",
                "inputs": {"string_a": "a cat", "string_b": "in space", "delimiter": " "},
            },
            "3": {"class_type": "CLIPTextEncode", "inputs": {"text": ["2", 0], "clip": ["1", 1]}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "bad", "clip": ["1", 1]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "6": {
                "class_type": "KSamplerAdvanced",
                "inputs": {
                    "model": ["1", 0],
                    "add_noise": "enable",
                    "noise_seed": 1,
                    "steps": 2,
                    "cfg": 1.0,
                    "sampler_name": "euler",
                    "scheduler": "normal",
                    "positive": ["3", 0],
                    "negative": ["4", 0],
                    "latent_image": ["5", 0],
                    "start_at_step": 0,
                    "end_at_step": 10000,
                    "return_with_leftover_noise": "disable",
                },
            },
        }
    )
    c = _by_key(find_candidates(wf, catalog))
    assert c["2.string_a"].reason == "positive prompt text of KSampler (Advanced) (node 6)"
    assert c["2.string_b"].reason == c["2.string_a"].reason
    # two prompt texts on one node: the node id alone cannot tell them apart
    assert (c["2.string_a"].label, c["2.string_b"].label) == ("Prompt #2 (string a)", "Prompt #2 (string b)")
    assert not c["2.delimiter"].suggested  # not multiline: a separator, not prompt text
    assert c["4.text"].label == "Negative prompt"
    assert c["6.noise_seed"].type == "seed" and c["6.noise_seed"].suggested


def test_duplicate_labels_get_node_ids(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {
                "class_type": "EmptyImage",
                "_meta": {"title": "Canvas"},
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
            },
            "2": {
                "class_type": "EmptyImage",
                "_meta": {"title": "Canvas"},
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
            },
        }
    )
    labels = [c.label for c in find_candidates(wf, catalog) if c.input_name == "width"]
    assert labels == ["Canvas width #1", "Canvas width #2"]


def test_unknown_node_inputs_typed_from_values(catalog: NodeCatalog) -> None:
    c = _by_key(find_candidates(fixture_workflow("custom_nodes.json"), catalog))
    assert (c["10.wildcard_text"].type, c["10.wildcard_text"].label, c["10.wildcard_text"].suggested) == (
        "text",
        "Wildcard positive wildcard text",
        False,
    )
    assert (c["10.mode"].type, c["11.quality"].type) == ("bool", "int")
    assert (c["10.seed"].type, c["10.seed"].suggested) == ("seed", True)
    assert "10.model" not in c and "13.text" not in c


def test_ordering_is_numeric_by_node_id(catalog: NodeCatalog) -> None:
    keys = [c.key for c in find_candidates(fixture_workflow("txt2img_controlnet_combine.json"), catalog)]
    node_order = list(dict.fromkeys(k.split(".")[0] for k in keys))
    assert node_order == ["3", "4", "5", "6", "7", "9", "10", "12", "13", "14", "20"]


def test_upload_inputs_are_typed_by_what_their_node_loads(catalog: NodeCatalog) -> None:
    workflow = load_workflow({
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
        "2": {"class_type": "LoadImageMask", "inputs": {"image": "m.png", "channel": "alpha"}},
        "3": {"class_type": "LoadVideo", "inputs": {"file": "v.mp4"}},
        "4": {"class_type": "LoadAudio", "inputs": {"audio": "s.wav"}},
    })
    types = {c.key: c.type for c in find_candidates(workflow, catalog)}
    assert types == {"1.image": "image", "2.image": "mask", "2.channel": "choice", "3.file": "video",
                     "4.audio": "audio"}
