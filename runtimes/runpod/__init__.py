"""RunPod serverless: a sibling of runtimes/modal/."""
