"""Work started by the CLI or the API: train, retrain, score a file, simulate traffic.

A job takes the settings and plain arguments and runs to completion in the calling process
(the API starts each in a child process: :mod:`leadscore.jobs.runner`).
"""
