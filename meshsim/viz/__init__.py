"""Pictures of runs: Raft timelines, request waterfalls, metrics over time, topology drawings.

Each figure function returns a matplotlib Figure, and the data behind it is
available as a DataFrame from a ``*_frame`` function beside it.  Matplotlib
is imported only when a figure is drawn.
"""
