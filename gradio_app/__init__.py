"""The Gradio app that samples, compares, scores and explores the project's models; app.py starts it."""
