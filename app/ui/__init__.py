"""Widgets: they read state, send intents and draw. No I/O and no llama here."""
