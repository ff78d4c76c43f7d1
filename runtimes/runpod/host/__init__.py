"""What runs on the user's machine: settings, the generated bundle, the REST client and the runner."""
