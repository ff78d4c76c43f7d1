"""What runs on the user's machine: deploy settings, the generated bundle, templates and endpoints through
RunPod's REST API v2 (api.py), and the Runner that sends an app's runs to its endpoint's job API (runner.py).
Never shipped."""
