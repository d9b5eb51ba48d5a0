"""Gradio UI: one module per tab. Only this package and app.py import gradio."""
