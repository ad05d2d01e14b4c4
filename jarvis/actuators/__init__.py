"""Actuators: the adapters between Jarvis and the providers it manages."""
