"""Model files in the managed engines' models folders: where each one goes, and fetching it from Hugging Face."""
