"""Why a render failed, in terms its user can act on: whether another attempt could
succeed (:func:`permanent`), and the reason without the server's paths (:func:`scrub`).

A render's media code is deterministic: FFmpeg or Pillow refusing the same bytes with
the same parameters refuses them again on every attempt, so such an error fails the
run at once. What a retry can fix is the machine's state: memory or disk running
short, an I/O error, too many open files.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l1.effects import MediaError
from l1.errors import L1Error

if TYPE_CHECKING:
    from collections.abc import Sequence

    from l1.workers.child import Job

__all__ = ["TRANSIENT_ERRNOS", "describe", "permanent", "scrub"]

# Error numbers that say the machine was short of something, not that the media is bad.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EAGAIN,
        errno.EINTR,
        errno.EIO,
        errno.ENOMEM,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EMFILE,
        errno.ENFILE,
        errno.EROFS,
        errno.ESTALE,
    }
)

# FFmpeg's own error codes (AVERROR_INVALIDDATA...) are four-letter tags, far above errno.
_TAGS = 4096

# Pillow's own decode failures: plain exceptions with no error number, raised in Pillow.
_PILLOW_DECODE = (OSError, SyntaxError, ValueError, EOFError)


def permanent(error: BaseException) -> bool:
    """True when the same render would fail the same way again: bad media or
    parameters (:class:`MediaError`, :class:`L1Error`), an FFmpeg error other than
    one of :data:`TRANSIENT_ERRNOS`, or Pillow failing to decode. Anything else (an
    ``OSError`` of the machine, a bug) is worth another attempt."""
    if isinstance(error, MediaError | L1Error):
        return True
    # Imported here: only a render process has PyAV and Pillow loaded, and only there
    # can their errors arise.
    import av.error

    if isinstance(error, av.error.FFmpegError):
        return abs(error.errno or 0) not in TRANSIENT_ERRNOS
    return _from_pillow(error)


def _from_pillow(error: BaseException) -> bool:
    """True for Pillow failing to decode (no error number: not the machine's)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError | Image.DecompressionBombError):
        return True
    if not isinstance(error, _PILLOW_DECODE) or getattr(error, "errno", None) is not None:
        return False
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    module = str(traceback.tb_frame.f_globals.get("__name__", ""))
    return module == "PIL" or module.startswith("PIL.")


def describe(error: BaseException) -> str:
    """``error`` as one line: FFmpeg's errors by their code, FFmpeg's last log line
    when it has one; others by their type and message."""
    import av.error

    if isinstance(error, av.error.FFmpegError):
        text = error.strerror or "FFmpeg failed"
        if error.filename:
            text = f"{text}: {str(error.filename)!r}"
        # A POSIX error number means something; FFmpeg's own codes are tags in disguise.
        code = abs(error.errno or 0)
        text = f"{text} (FFmpeg error {code})" if 0 < code < _TAGS else f"{text} (FFmpeg)"
        log: Any = error.log  # (level, name, message) at run time, whatever the stub says
        if log:
            text = f"{text}; FFmpeg said: {str(log[2]).strip()}"
        return text
    if _from_pillow(error):
        return f"the image could not be decoded: {error}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


# "<message>: '<path>'" with the error number before it ("[Errno N] ", as Python's and
# PyAV's errors print), or after it (" returned N", PyAV's ArgumentError; or
# " (FFmpeg error N)" or " (FFmpeg)", :func:`describe`).
_PATH_ERROR = re.compile(
    r"(?:\[Errno (?P<before>-?\d+)\] )?(?P<message>[^\s:;'\[\]][^:;'\[\]]*?): "
    r"'(?P<path>/[^']*)'"
    r"(?: returned (?P<returned>-?\d+)| \((?P<ffmpeg>FFmpeg(?: error \d+)?)\))?"
)
_PATH = re.compile(r"'?(/[^\s'\",;:()\[\]]+)'?")


def scrub(reason: str, job: Job) -> str:
    """``reason`` in its user's terms: the render's inputs read "input 1", "input 2"...,
    its output "the output", any other path under the cache directory its file name;
    FFmpeg's ``Invalid argument: '<output>' returned 22`` reads ``writing the output
    failed: Invalid argument (FFmpeg error 22)``."""
    names = _Names(inputs=job.inputs, workdir=job.workdir, cache_dir=job.cache_dir)

    def error_on_path(match: re.Match[str]) -> str:
        path = names.name(match["path"])
        if path is None:  # not one of the render's own files: leave it to the last pass
            return match[0]
        if match["ffmpeg"]:
            code = f" ({match['ffmpeg']})"
        elif match["returned"]:
            code = f" (FFmpeg error {match['returned']})"
        elif match["before"]:
            number = abs(int(match["before"]))
            code = f" (error {number})" if number < _TAGS else " (FFmpeg)"
        else:
            code = ""
        return f"{names.action(match['path'], path)} failed: {match['message']}{code}"

    reason = _PATH_ERROR.sub(error_on_path, reason)
    return _PATH.sub(lambda m: names.name(m[1]) or m[0], reason)


class _Names:
    """What each of a render's paths is called in a message."""

    def __init__(self, *, inputs: Sequence[Path], workdir: Path, cache_dir: Path) -> None:
        self._inputs = {str(path): f"input {n}" for n, path in enumerate(inputs, start=1)}
        for n, path in enumerate(inputs, start=1):
            self._inputs.setdefault(str(path.resolve()), f"input {n}")
        self._workdir = workdir
        self._roots = (workdir, workdir.resolve(), cache_dir, cache_dir.resolve())

    def name(self, text: str) -> str | None:
        """The name of the path ``text``, or None when it is not the render's."""
        if text in self._inputs:
            return self._inputs[text]
        path = Path(text)
        if not any(path.is_relative_to(root) for root in self._roots):
            return None
        if path.parent in (self._workdir, self._workdir.resolve()) and path.name.startswith(
            "output"
        ):
            return "the output"  # every effect writes its result as output.<suffix>
        return path.name

    def action(self, text: str, name: str) -> str:
        """What the render was doing with the path ``text`` called ``name``."""
        if text in self._inputs:
            return f"reading {name}"
        if name == "the output":
            return "writing the output"
        return f"using {name}"
