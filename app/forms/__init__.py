"""The generated form of each published app (Gradio), mounted at /apps/{slug}."""
