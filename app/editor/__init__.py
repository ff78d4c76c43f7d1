"""The ComfyUI editor's way in: the drafts its "Publish…" command sends, and which origins may send them."""
