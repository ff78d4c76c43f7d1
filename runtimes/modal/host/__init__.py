"""What runs on the user's machine: deploy settings and their costs, the generated bundle, deploy and teardown
through the modal SDK, and the Runner that sends an app's runs to its live deployment. Never shipped."""
