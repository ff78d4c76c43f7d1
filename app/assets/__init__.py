"""The Comfy API v2's assets: uploads stored once per content (blake3), and run outputs, both by UUID."""
