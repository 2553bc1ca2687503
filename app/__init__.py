"""Hearth: chat with language models that run on your own computer."""

__version__ = "0.1.0"
APP_NAME = "Hearth"
