"""What the harness writes and reads back: synthetic sets (``synthetic``), the results table and its
cell files (``results``), the full-data references, file names (``paths``) and the one atomic
writer and lock (``files``).
"""
