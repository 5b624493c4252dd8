"""Batches of files: discovery, output mapping, manifest and resume, and the per-file worker.

:mod:`~instacolor.batch.jobs` finds inputs, maps outputs and keeps the JSON-lines
manifest; :mod:`~instacolor.batch.worker` colorizes one file (read, colorize, atomic
write with provenance) and runs a process pool. The command line
(:mod:`instacolor.cli`) and the Ray runner (:mod:`instacolor.distributed`) both build
on them, so a batch behaves the same whichever runs it.
"""
