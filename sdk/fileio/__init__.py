"""The one way slsdk writes and deletes files: nothing the user has is ever lost.

The rule (docs/guide.md, "Your files are safe"), enforced here and only here (a test fails on any direct write or
deletion elsewhere in the package):

* slsdk writes a **new** path. It replaces a path only when it can prove that it wrote what is there, and
  only when asked (``overwrite=True``: ``--overwrite`` / ``--resume``), or when this very process wrote it.
  Proof is by content, never by name: the **ledger** ``.slsdk-files.jsonl`` in the folder records the size and
  SHA-256 of every file slsdk wrote there (a file whose bytes changed since is the user's), or an ``owned``
  check the caller passes (a checkpoint or bundle recognised by what it holds).
* It never writes onto one of the command's inputs (:func:`reading` declares them), never replaces a
  symbolic link, never replaces a folder with a file or a file with a folder.
* Every write goes to a temp name beside the target (``.NAME.PID-TOKEN.slsdk-tmp``), is synced, then
  renamed: a kill at any point leaves the old output or the new one. A folder is replaced by an atomic
  exchange (``renameat2(RENAME_EXCHANGE)`` on Linux); where that is missing, a kill between the two renames
  leaves the old folder parked beside the target, and the next write there puts it back.
* One run per output at a time: :func:`output_lock` takes an exclusive lock (``.NAME.slsdk-lock`` beside
  the output, holding the PID); a second run is refused naming the holder; a dead holder's lock is taken
  over, and said so.
* Leftovers: only names this module makes (its prefix, a PID and a random token) whose process is gone are
  removed, and a folder only when it holds the owner mark this module wrote into it. Nothing else is ever
  removed, and nothing recursively outside slsdk's own temp folders.
* A full disk raises :class:`DiskFullError` naming the file and the free space, the old file untouched.

Standard library only (the runtime writes without torch). :func:`set_write_hook` lets tests observe or kill
the process at each write point (``hook(point, path)``).

The parts: :mod:`~slsdk.fileio.rule` (the checks, inputs), :mod:`~slsdk.fileio.ledger` (proof of ownership),
:mod:`~slsdk.fileio.files` (atomic files, logs, removal), :mod:`~slsdk.fileio.folders` (atomic and scratch
folders), :mod:`~slsdk.fileio.locks` (one run per output), :mod:`~slsdk.fileio.leftovers` (what killed runs
left), :mod:`~slsdk.fileio.write_errors`, :mod:`~slsdk.fileio.state` (names, this process's record). Import
everything from ``slsdk.fileio``.
"""
from __future__ import annotations

from slsdk.fileio.files import (append_text, atomic_copy, atomic_path, atomic_write, atomic_write_text, discard,
                                remove)
from slsdk.fileio.folders import TempDir, atomic_dir, temp_dir
from slsdk.fileio.ledger import is_ours, sha256_file
from slsdk.fileio.leftovers import clean_stale
from slsdk.fileio.locks import output_lock
from slsdk.fileio.rule import check_output, check_replace, reading
from slsdk.fileio.state import (LEDGER, LOCK_SUFFIX, OLD_SUFFIX, OWNER_FILE, SCRATCH_PREFIX, TEMP_SUFFIX,  # noqa: F401
                                forget_writes, fsync_dir, set_write_hook)
from slsdk.fileio.write_errors import DiskFullError, OutputExistsError, OutputLockedError, WriteError

__all__ = ["WriteError", "DiskFullError", "OutputExistsError", "OutputLockedError",
           "atomic_write", "atomic_write_text", "atomic_copy", "atomic_path", "append_text", "atomic_dir",
           "remove", "output_lock", "reading", "is_ours", "check_output", "check_replace", "temp_dir", "TempDir",
           "clean_stale", "fsync_dir",
           "set_write_hook", "forget_writes", "discard", "sha256_file", "TEMP_SUFFIX", "LEDGER"]
