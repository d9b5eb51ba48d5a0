"""Evaluation: the paper's metrics and benchmarks, reproducible from the command line.

metrics.py       J, F, statistics (davis2017-evaluation semantics), vectorised over objects
folder_eval.py   score mask folders: semi-supervised / unsupervised (Hungarian) / all-frames
correlation.py   rollout–mask Pearson correlation (Table 3; reused by training)
summaries.py     each benchmark's official scoring protocol (readers: steerseg_core.datasets)
submission.py    the server zip for benchmarks without public ground truth
runner.py        resumable, shardable batch runs (rundir.py: files, records.py: per expression)
tables.py        summaries and markdown tables in the paper's layout
ablation.py      CoT × soft prompts, N_p and α grids
cli.py           eval-masks, eval, eval-merge, eval-ablation, eval-table

Modules import nothing heavy at package import; the pipeline is imported only when a run needs it.
"""
