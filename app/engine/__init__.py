"""The model engine: llama.cpp in a child process, and the Qt worker that talks to it.

Importing this package imports neither Qt nor llama_cpp; pick the module you need.
"""
