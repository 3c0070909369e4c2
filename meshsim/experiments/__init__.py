"""Experiments that measure real systems, to set beside meshsim's models."""
