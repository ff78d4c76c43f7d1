"""Serverless runtime on Modal: settings, the generated app file, the container-side worker and endpoint,
deploy/teardown through the modal SDK, and the client the app uses to send runs to a deployment."""
