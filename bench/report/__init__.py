"""Reporting from stored results, never recomputing: tables, figures in one style, the claim report,
cross-architecture tables, curves, statistics and the comparison with a reference run.
"""
