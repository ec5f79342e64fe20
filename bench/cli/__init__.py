"""The ``dasm-bench`` command line: the parser, argument checks, and the commands on one set
(``sets``) or on a whole grid (``grids``); ``main`` dispatches.
"""
