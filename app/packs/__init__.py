"""Custom node packs of the managed engines: install at a pin, list with their state, remove (service, CLI)."""
