"""Running work: the cell grid (``grid``), experiment specs (``experiment``), the runner and its
executors, schedulers, jobs and claims on cells, Slurm, Optuna sweeps and budget ladders.
"""
