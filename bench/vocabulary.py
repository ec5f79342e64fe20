"""Sentinel values shared by specs, grids, configs and tables (torch-free, so parsing a spec stays light).

Example::

    from bench.vocabulary import OWN_PROTOCOL, normalise_protocol
    normalise_protocol("default") == OWN_PROTOCOL   # True: every method under its own protocol
"""

# A grid's, spec's or table view's protocol meaning "each method under its own protocol"
# (MethodSpec.protocol, resolved per dataset by bench.spec.cells.method_protocol). It never enters a
# cell key: a cell names the protocol it resolved to.
OWN_PROTOCOL = "own"
# what specs, saved grids and the CLI said before there was one sentinel; read as OWN_PROTOCOL
LEGACY_OWN_PROTOCOLS = ("default",)

# the coreset every table measures improvement against, and that a grid with several protocols
# evaluates under each of them (the same-protocol baseline)
REFERENCE_METHOD = "random"


def normalise_protocol(name: str) -> str:
    """``name``, with every spelling of "each method's own" turned into :data:`OWN_PROTOCOL`."""
    return OWN_PROTOCOL if name in LEGACY_OWN_PROTOCOLS else name


# what rows and sets from before the training split was recorded were distilled from
LEGACY_TRAIN_SPLIT = "train-val"
