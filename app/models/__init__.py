"""The model files apps need: which, from where, present or not, and the fetches that bring the missing ones."""
