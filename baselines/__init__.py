"""Baseline methods: coreset selection and the matching methods DASM is compared with.

Each module registers one method with ``bench.methods.registry.register_method``; the registry
imports every module of this package, so adding a method is adding a file.
"""
