"""Performance against the machine: the cost model (CPU-seconds per unit of work), the roofline
(achieved FLOP/s against the measured peak) and the device check for a GPU.
"""
