"""The decoding libraries' process-wide settings, as augkit's own decodes need them.

Pillow and OpenCV keep some settings in globals, which the user's code may set for its
own reasons, and which decide what augkit's decodes do:

* ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True``, a common line in PyTorch training
  scripts, makes Pillow return a cut or damaged GIF, PNG or JPEG as an image, the
  missing part grey or garbage; augkit needs the error instead;
* ``PIL.Image.MAX_IMAGE_PIXELS``: augkit checks its own limit from the header, with a
  better message (decoding.resolve_max_pixels); Pillow's would warn on stderr, or fail
  images the user allowed with --max-pixels;
* OpenCV's log level: when OpenCV refuses a BMP or WebP it logs a line on stderr that
  names no file; the file's DecodeError says it instead;
* Python's warning filters and the "PIL" logger's level: Pillow warns about damaged
  metadata ("Corrupt EXIF data", "Tag data larger than file") and logs some errors
  ("More samples per pixel than can be decoded"), which Python prints on stderr, naming
  no file; the image itself decodes, or fails with a DecodeError that says why.

:func:`augkit_settings` applies augkit's values while at least one augkit decode runs in
the process and puts the user's back when the last one ends: the user's code keeps its
settings (feature caching decodes in several threads at once, hence a count under a
lock rather than a save and restore per decode, which would interleave). These are
globals, so code of the user's that runs in another thread *during* an augkit decode sees
augkit's values: strict loading, OpenCV quiet, Pillow's warnings ignored; and a change it
makes to Python's warning filters then is undone with augkit's.

libtiff, which Pillow uses, prints its errors unless its handler is removed; no caller
can want those lines (Pillow raises for the same failure), so :func:`quiet_libtiff`
removes it for good.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import logging
import os
import threading
import warnings
from collections.abc import Iterator

import cv2
import PIL
from PIL import Image, ImageFile

_PIL_LOGGER = logging.getLogger("PIL")
_lock = threading.Lock()
_decodes_running = 0
_users_values: tuple = ()


def _cv_log_level() -> int | None:
    try:
        return cv2.utils.logging.getLogLevel()
    except AttributeError:  # an OpenCV build without the logging module's bindings
        return None


def _set_cv_log_level(level: int | None) -> None:
    if level is not None:
        cv2.utils.logging.setLogLevel(level)


@contextlib.contextmanager
def augkit_settings() -> Iterator[None]:
    """Pillow strict, unlimited (augkit limits) and silent, OpenCV silent, for the duration."""
    global _decodes_running, _users_values
    with _lock:
        if _decodes_running == 0:
            level = _cv_log_level()
            users_warning_filters = warnings.catch_warnings()  # saves the filters, restores them on exit
            users_warning_filters.__enter__()
            _users_values = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS, level, users_warning_filters,
                             _PIL_LOGGER.level)
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            _PIL_LOGGER.setLevel(logging.CRITICAL + 1)  # Pillow's modules log through children of "PIL"
            Image.MAX_IMAGE_PIXELS = None
            _set_cv_log_level(None if level is None else cv2.utils.logging.LOG_LEVEL_SILENT)
            # Pillow warns from its own modules, or (stacklevel 2) from its caller's
            warnings.filterwarnings("ignore", module=r"(PIL\.|augkit\.decoding$)")
        _decodes_running += 1
    try:
        yield
    finally:
        with _lock:
            _decodes_running -= 1
            if _decodes_running == 0:
                (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS, level, users_warning_filters,
                 pil_level) = _users_values
                _set_cv_log_level(level)
                _PIL_LOGGER.setLevel(pil_level)
                users_warning_filters.__exit__(None, None, None)


_libtiff_quiet = False


def quiet_libtiff() -> None:
    """Stop the libtiff that Pillow uses printing its errors to stderr.

    Such a line names no file, and Pillow raises for the same failure ("decoder
    error -2"), which becomes the file's DecodeError; Pillow mutes libtiff's
    warnings itself. Process-wide, once, best effort: the library is found where
    Linux maps it, or where Pillow's macOS wheel keeps it (on Windows it is inside
    Pillow's own module, out of reach).
    """
    global _libtiff_quiet
    if _libtiff_quiet:
        return
    with _lock:  # a second thread must not decode a TIFF before the handler is gone
        if _libtiff_quiet:
            return
        try:
            with open("/proc/self/maps") as maps:
                paths = {line.split()[-1] for line in maps if "libtiff" in line}
        except OSError:
            paths = set(glob.glob(os.path.join(os.path.dirname(PIL.__file__), ".dylibs", "libtiff*")))
        for path in paths:
            try:
                ctypes.CDLL(path).TIFFSetErrorHandler(None)
            except (OSError, AttributeError):
                pass
        _libtiff_quiet = True
