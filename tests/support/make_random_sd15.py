"""Write a random-weight checkpoint that ComfyUI's CheckpointLoaderSimple detects as SD1.5.

Run with the ENGINE's interpreter (it imports ComfyUI's own classes):
    <engine python> make_random_sd15.py COMFYUI_DIR OUT.safetensors [--seed 0]

The UNet keeps the two numbers detection reads (model_channels 320, context_dim 768, conv proj_in,
no adm) but has a single resolution level, and the VAE is a TAESD: ~280 MiB, a 64x64 2-step run in
~0.3 s on CPU. The CLIP-L text encoder is full size (CLIPTextEncode needs it). Module trees are built
on the meta device (no memory spent), then filled with seeded random tensors, so the same seed gives
the same file and pixel-identical images.
"""

import math
import os
import sys


def main() -> None:
    comfyui_dir, out = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
    sys.path.insert(0, comfyui_dir)
    import comfy.cli_args
    import torch

    comfy.cli_args.args.cpu = True  # never touch CUDA while building a fixture
    import comfy.model_detection
    import comfy.sd1_clip
    import comfy.supported_models
    import comfy.taesd.taesd
    import comfy.utils

    unet_config = {
        "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
        "adm_in_channels": None, "in_channels": 4, "out_channels": 4, "model_channels": 320,
        "num_res_blocks": [1], "transformer_depth": [1], "channel_mult": [1], "transformer_depth_middle": -1,
        "use_linear_in_transformer": False, "context_dim": 768, "transformer_depth_output": [1, 1],
        "use_temporal_resblock": False, "use_temporal_attention": False,
    }
    model_config = comfy.supported_models.SD15(unet_config)
    with torch.device("meta"):
        unet = model_config.get_model({}).diffusion_model
        clip = comfy.sd1_clip.SD1ClipModel(device="meta", dtype=torch.float32)
        vae = comfy.taesd.taesd.TAESD(latent_channels=4)

    state = {}
    state.update(model_config.process_unet_state_dict_for_saving(_init_kinds(torch, unet)))
    state.update(model_config.process_clip_state_dict_for_saving(_init_kinds(torch, clip)))
    state.update(model_config.process_vae_state_dict_for_saving(_init_kinds(torch, vae)))

    generator = torch.Generator().manual_seed(seed)
    tensors = {key: _random_tensor(torch, shape, kind, generator).to(torch.float16).contiguous()
               for key, (shape, kind) in state.items()}
    detected = comfy.model_detection.model_config_from_unet(tensors, "model.diffusion_model.")
    if type(detected).__name__ != "SD15":
        raise SystemExit(f"the synthesized checkpoint is detected as {type(detected).__name__}, not SD15")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    partial = out + ".partial"
    comfy.utils.save_torch_file(tensors, partial, metadata={"note": "random weights, test fixture"})
    os.replace(partial, out)  # never leave a half-written file where the cache expects a whole one


def _init_kinds(torch, module):
    """key -> (shape, how to initialise) for every persistent parameter and buffer of a module tree."""
    linear = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    norms = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.BatchNorm2d)
    persistent = set(module.state_dict().keys())
    kinds = {}
    for module_name, sub in module.named_modules():
        for name, tensor in [*sub.named_parameters(recurse=False), *sub.named_buffers(recurse=False)]:
            key = f"{module_name}.{name}" if module_name else name
            if key not in persistent:
                continue
            if isinstance(sub, linear):
                kind = "fan_in" if name == "weight" else "zeros"
            elif isinstance(sub, norms):
                kind = "ones" if name == "weight" else "zeros"
            elif isinstance(sub, torch.nn.Embedding):
                kind = "embedding"
            else:
                kind = "ones" if "scale" in name else "zeros"
            kinds[key] = (tuple(tensor.shape), kind)
    return kinds


def _random_tensor(torch, shape, kind, generator):
    if kind == "fan_in":
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        return torch.randn(shape, generator=generator) / math.sqrt(fan_in)
    if kind == "embedding":
        return torch.randn(shape, generator=generator) * 0.02
    return torch.ones(shape) if kind == "ones" else torch.zeros(shape)


if __name__ == "__main__":
    main()
