"""The Faust worker: the app and one module per agent. Faust is used nowhere else."""
