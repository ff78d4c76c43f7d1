"""Comfy Publisher's memory-snapshot helper, part 2: a route that shows CUDA to an engine started without it.

POST /comfy-publisher/gpu {"devices": "0"} sets CUDA_VISIBLE_DEVICES in the engine process (CUDA was never
initialised while it was hidden, so torch reads the variable at its first CUDA call) and answers whether
torch now sees a GPU, so the caller can fall back to a plain restart when it does not.
"""

import os

from aiohttp import web
from server import PromptServer


@PromptServer.instance.routes.post("/comfy-publisher/gpu")
async def show_gpu(request: web.Request) -> web.Response:
    body = await request.json() if request.can_read_body else {}
    os.environ["CUDA_VISIBLE_DEVICES"] = str(body.get("devices", "0"))
    import torch

    available = bool(torch.cuda.is_available())
    name = torch.cuda.get_device_name(0) if available else None
    return web.json_response({"cuda_visible_devices": os.environ["CUDA_VISIBLE_DEVICES"], "cuda": available,
                              "device": name})


@PromptServer.instance.routes.get("/comfy-publisher/device")
async def device(request: web.Request) -> web.Response:
    import comfy.model_management as mm

    return web.json_response({"device": str(mm.get_torch_device()),
                              "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")})


NODE_CLASS_MAPPINGS: dict = {}
