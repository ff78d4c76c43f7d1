"""Speaking to one ComfyUI engine over its own HTTP + websocket protocol."""
