"""Batches of files: discovery, output mapping, manifest and resume, workers, one procedure.

:mod:`~instacolor.batch.jobs` finds inputs and maps outputs,
:mod:`~instacolor.batch.manifest` keeps the JSON-lines manifest and the resume rule,
:mod:`~instacolor.batch.worker` colorizes one file (read, colorize, atomic write with
provenance) and runs a process pool, :mod:`~instacolor.batch.ray` runs Ray Data actors,
and :mod:`~instacolor.batch.run` is the one batch procedure that the command line
(:mod:`instacolor.cli`) and :func:`~instacolor.batch.run.colorize_files` both call, so a
batch behaves the same whoever runs it. :mod:`~instacolor.batch.signals` makes SIGTERM
stop a batch as cleanly as Ctrl-C.
"""
