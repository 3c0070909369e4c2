"""Pure, deterministic protocol cores: no SimPy, no clock of their own.

Each core takes inputs and the current time (ms) and returns decisions, so it
can be unit-tested call by call and reused by any shell.
"""
