"""Shared-memory leak check of the dist tests: the objects of this test's own runs still in /dev/shm
(other tests' runs may be live in parallel under ctest -j). Every supervisor names its board in
RUN/rdzv.json, and a run's objects share the board's prefix."""
import glob
import json
import os


def shm_names():
    return {n for n in os.listdir("/dev/shm") if n.startswith("holdfast-")}


def own_shm_leftovers(root, before):
    prefixes = []
    for f in glob.glob(os.path.join(root, "**", "rdzv.json"), recursive=True):
        try:
            prefixes.append(json.load(open(f))["board"].lstrip("/")[: -len("board")])
        except (OSError, ValueError, KeyError):
            continue
    return sorted(n for n in shm_names() - before if any(n.startswith(p) for p in prefixes))
