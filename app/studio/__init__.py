"""The studio (Gradio, mounted at /studio): one module per tab, pure helpers apart so they are testable."""
