"""Sentinel values shared by specs, grids and configs (torch-free, so parsing a spec stays light).

Example::

    from bench.vocabulary import OWN_PROTOCOL
    spec.protocol == OWN_PROTOCOL   # every method under its own protocol
"""

# A grid's or spec's protocol meaning "each method under its own protocol" (MethodSpec.protocol). The
# string stays "default": specs and saved grids already carry it, and it never enters a cell key
# (a cell names the protocol it resolved to). Compare against this name, not the literal.
OWN_PROTOCOL = "default"
