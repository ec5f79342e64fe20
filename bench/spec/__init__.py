"""What a run is asked to compute: experiment specs (``experiment``), the grid of methods x IPCs x
seeds and its cells (``grid``), and the selection a run was given (``run_selection``).
"""
