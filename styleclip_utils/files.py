"""Reading and writing the files a user relies on (model records, run configs, checkpoints, metrics): a damaged
file raises an error that names it and says what to do, and a failed write leaves the previous file intact.

    record = read_json(path, fix="Re-export the model.", required=("config",))
    atomic_write(path, lambda f: torch.save(obj, f))      # temp file + rename
    write_json(path, obj)
"""
import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

# quota exceeded is a full disk as far as the user is concerned
DISK_FULL = {errno.ENOSPC} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())


class BadJSONError(ValueError):
    """A JSON file that is truncated, corrupt or lacks a key the code reads; the message names it and says
    what to do."""


def read_json(path, fix, required=(), error=BadJSONError):
    """The object in the JSON file `path`. A file that does not parse, or lacks one of the `required` keys
    (dotted for nested ones: "metrics.threshold"), raises `error` naming the file, followed by `fix`."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except ValueError as e:  # JSONDecodeError, or UnicodeDecodeError for binary garbage
        raise error(f"{path} is not valid JSON ({e}): the file is truncated or corrupt. {fix}") from e
    for key in required:
        node = obj
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise error(f"{path} has no {key!r} entry, which loading it needs. {fix}")
            node = node[part]
    return obj


def atomic_write(path, write):
    """Call `write(f)` on a binary file opened on a hidden temp file beside `path`, then rename it onto `path`:
    a crash or a full disk never leaves a half-written file where a finished one is expected, and the previous
    file stays intact. The temp file is removed on any failure; an OSError becomes one that names `path` and
    says what to do.

    The writer gets a file object, not a path: torch.save and safetensors' save_file given a path turn a full
    disk into an opaque RuntimeError / SafetensorError, while Python's file raises OSError(ENOSPC)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:  # KeyboardInterrupt too: no temp file is left behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        cause = _os_error(e) if isinstance(e, Exception) else None  # Ctrl-C stays Ctrl-C
        if cause is None:
            raise
        msg = _write_failed(path, cause)
        raise (OSError(cause.errno, msg) if cause.errno else OSError(msg)) from e


def _os_error(e):
    """The OSError behind `e`, if any: torch.save's zip writer turns a failed write (ENOSPC) into a RuntimeError
    ("unexpected pos") raised while the OSError is being handled."""
    while e is not None and not isinstance(e, OSError):
        e = e.__cause__ or e.__context__
    return e


def _write_failed(path, e):
    if e.errno in DISK_FULL:
        try:
            free = f" ({shutil.disk_usage(path.parent).free / 2**20:.0f} MB free there now)"
        except OSError:
            free = ""
        return (f"the disk is full: writing {path} failed{free}; any previous {path.name} is left intact. Free "
                f"some space, or write to another folder (another out_dir)")
    return (f"writing {path} failed ({e.strerror or e}); any previous {path.name} is left intact. Check that the "
            f"folder is writable and has space, or write to another folder (another out_dir)")


def write_json(path, obj):
    """`obj` as indented JSON, written atomically (`atomic_write`)."""
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=1) + "\n").encode()))


def pid_alive(pid):
    """Whether process `pid` runs on this machine: the owner test of temp files named after their process (a
    killed writer runs no `finally`, so the next one removes what a dead pid left)."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows: assume alive
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True
