"""Deploying app versions to serverless GPUs (Modal): plan, deploy with a streamed log, tear down, route an app's
runs to its deployment (`service`), and the same from the command line (`cli`)."""
