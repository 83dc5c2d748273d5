"""Reading frames of image files by byte ranges: the lazy array behind dask.

A :class:`FrameSource` says where the frames of one file are (a byte
offset and stride, a list of byte offsets, or TIFF page numbers) and
:class:`LazyFrames` concatenates sources along time. Both are small,
picklable values without open handles or image data, so a dask graph built
on them pickles to a few kB and runs on a cluster: each read opens its file,
checks that it has not changed since the stack was opened, reads the
requested frames straight into the output array and closes the file.

Uncompressed frames are read with ``readinto`` into the output array (one
read per run of contiguous frames): no memory map, so the resident memory
of a reader does not grow with the frames it has read, and no temporary
copy. Compressed or tiled TIFF pages are decoded with tifffile, page range
by page range.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import RunFolderError

__all__ = ["FrameSource", "LazyFrames"]


@dataclass(frozen=True)
class FrameSource:
    """Where consecutive frames of a movie are stored in one file.

    Attributes
    ----------
    path : str
        The file.
    n_frames : int
        Number of frames in this source.
    frame_shape : tuple of int
        ``(rows, columns)``.
    file_dtype : str
        Pixel type with the file's byte order (e.g. ``'>u2'``).
    stamp : tuple of int
        ``(st_size, st_mtime_ns)`` of the file when it was opened.
    mode : {'strided', 'offsets', 'pages', 'nd2'}
        ``'strided'``: frame k starts at byte ``offset + k * stride``;
        ``'offsets'``: frame k starts at byte ``offsets[k]``; ``'pages'``:
        frame k is TIFF page ``pages[k]`` (compressed or tiled data);
        ``'nd2'``: frame k is channel ``channel`` of the Nikon ND2 sequence
        ``pages[k]`` (read with the ``nd2`` package).
    offset, stride : int or None
        Strided mode.
    offsets : tuple of int or None
        Offsets mode.
    pages : tuple of int or None
        Pages mode (indices of the file's pages); ND2 sequence indices.
    channel : int or None
        ND2 mode: the channel (component) of each sequence frame.
    """

    path: str
    n_frames: int
    frame_shape: tuple[int, int]
    file_dtype: str
    stamp: tuple[int, int]
    mode: Literal["strided", "offsets", "pages", "nd2"]
    offset: int | None = None
    stride: int | None = None
    offsets: tuple[int, ...] | None = None
    pages: tuple[int, ...] | None = None
    channel: int | None = None

    @property
    def dtype(self) -> np.dtype:
        """Pixel type in native byte order."""
        return np.dtype(self.file_dtype).newbyteorder("=")

    @property
    def frame_nbytes(self) -> int:
        return int(self.frame_shape[0] * self.frame_shape[1] * np.dtype(self.file_dtype).itemsize)

    def data_end(self) -> int:
        """One past the last byte of image data (not for pages mode)."""
        if self.mode == "strided":
            assert self.offset is not None and self.stride is not None
            return self.offset + (self.n_frames - 1) * self.stride + self.frame_nbytes
        assert self.offsets is not None
        return max(self.offsets) + self.frame_nbytes

    def token(self) -> tuple:
        """What identifies the data read (for dask's tokenize)."""
        return (
            self.path,
            self.stamp,
            self.n_frames,
            self.file_dtype,
            self.mode,
            self.offset,
            self.stride,
            hash(self.offsets),
            hash(self.pages),
            self.channel,
        )


def _readinto(fh: Any, offset: int, buf: memoryview, path: str) -> None:
    fh.seek(offset)
    view, done = buf, 0
    while done < len(buf):
        n = fh.readinto(view[done:])
        if not n:
            raise RunFolderError(
                path,
                f"truncated: image data end at byte {offset + done}, expected {len(buf) - done} more bytes",
            )
        done += n


def _bytes(a: np.ndarray) -> memoryview:
    return a.data.cast("B")  # a.data is memoryview(a)


def read_frames(src: FrameSource, start: int, stop: int, out: np.ndarray) -> None:
    """Read frames ``start:stop`` of ``src`` into ``out`` (native byte order).

    Raises
    ------
    RunFolderError
        If the file disappeared, changed since it was opened, or cannot be read.
    """
    try:
        st = os.stat(src.path)
    except OSError as exc:
        raise RunFolderError(src.path, f"cannot be read any more: {exc.strerror}") from None
    if (st.st_size, st.st_mtime_ns) != src.stamp:
        raise RunFolderError(src.path, "file changed since the stack was opened; open it again")
    if stop <= start:
        return
    if src.mode == "pages":
        _read_pages(src, start, stop, out)
        return
    if src.mode == "nd2":
        _read_nd2(src, start, stop, out)
        return
    nbytes = src.frame_nbytes
    try:
        with open(src.path, "rb", buffering=0) as fh:
            if src.mode == "strided":
                assert src.offset is not None and src.stride is not None
                if src.stride == nbytes:  # contiguous: one read
                    _readinto(fh, src.offset + start * nbytes, _bytes(out), src.path)
                else:
                    for j, k in enumerate(range(start, stop)):
                        _readinto(fh, src.offset + k * src.stride, _bytes(out[j]), src.path)
            else:
                assert src.offsets is not None
                offs = src.offsets
                j = 0
                while j < stop - start:  # coalesce runs of adjacent frames
                    k = start + j
                    run = 1
                    while j + run < stop - start and offs[k + run] == offs[k] + run * nbytes:
                        run += 1
                    _readinto(fh, offs[k], _bytes(out[j : j + run]), src.path)
                    j += run
    except OSError as exc:
        raise RunFolderError(
            src.path, f"cannot read frames {start}-{stop - 1}: {exc.strerror or exc}"
        ) from None
    if not np.dtype(src.file_dtype).isnative:
        out.byteswap(inplace=True)


def _read_pages(src: FrameSource, start: int, stop: int, out: np.ndarray) -> None:
    import tifffile

    assert src.pages is not None
    pages = src.pages[start:stop]
    key: Any = (
        slice(pages[0], pages[-1] + 1)
        if list(pages) == list(range(pages[0], pages[0] + len(pages)))
        else list(pages)
    )
    try:
        with tifffile.TiffFile(src.path, _multifile=False) as tif:
            arr = tif.asarray(key=key, maxworkers=1)
    except Exception as exc:
        raise RunFolderError(src.path, f"cannot read frames {start}-{stop - 1}: {exc}") from exc
    out[...] = arr.reshape(out.shape)


def _read_nd2(src: FrameSource, start: int, stop: int, out: np.ndarray) -> None:
    import nd2

    assert src.pages is not None
    try:
        with nd2.ND2File(src.path) as f:
            for j, seq in enumerate(src.pages[start:stop]):
                frame = np.asarray(f.read_frame(int(seq)))
                if frame.ndim == 3:  # (channels, y, x)
                    frame = frame[src.channel or 0]
                out[j] = frame
    except Exception as exc:
        raise RunFolderError(src.path, f"cannot read frames {start}-{stop - 1}: {exc}") from exc


class LazyFrames:
    """A picklable, array-like ``(t, y, x)`` view of frames in one or more files.

    Indexing reads only the requested frames. The object holds file names,
    frame counts and byte offsets (no open handle, no image data), which is
    what a dask graph may carry. It deliberately has no ``copy`` method
    (``dask.array.from_array`` would call it).

    Parameters
    ----------
    sources : sequence of FrameSource
        In time order; all with the same frame shape and pixel type.
    """

    def __init__(self, sources: tuple[FrameSource, ...]):
        self.files = tuple(sources)
        first = self.files[0]
        self.dtype = first.dtype
        starts = np.cumsum([0] + [f.n_frames for f in self.files])
        self._starts = tuple(int(s) for s in starts)
        self.shape = (self._starts[-1], *first.frame_shape)
        self.ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        n = len({f.path for f in self.files})
        return f"{type(self).__name__}({n} file(s), shape={self.shape}, dtype={self.dtype})"

    def __dask_tokenize__(self) -> tuple:
        return ("plscope.LazyFrames", tuple(f.token() for f in self.files))

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key) or len(key) > 3:
            raise IndexError("frames support up to 3 indices (t, y, x) without Ellipsis")
        k0, rest = (key[0] if key else slice(None)), key[1:]
        n = self.shape[0]
        if isinstance(k0, slice) and (k0.step is None or k0.step == 1):
            start, stop, _ = k0.indices(n)
            frames = self.read(start, max(start, stop))
        elif isinstance(k0, (int, np.integer)):
            i = int(k0) + n if k0 < 0 else int(k0)
            if not 0 <= i < n:
                raise IndexError(f"frame {k0} out of range for {n} frames")
            frames = self.read(i, i + 1)[0]
        else:  # step slice, integer array, boolean mask: frame by frame
            idx = np.arange(n)[k0]
            frames = np.empty((idx.size, *self.shape[1:]), self.dtype)
            for j, frame in enumerate(idx.ravel()):
                self.read(int(frame), int(frame) + 1, out=frames[j : j + 1])
            frames = frames.reshape(*idx.shape, *self.shape[1:])
        if not rest:
            return frames
        return frames[(slice(None),) * (frames.ndim - 2) + rest]

    def read(self, start: int, stop: int, *, out: np.ndarray | None = None) -> np.ndarray:
        """Frames ``start:stop`` (global indices), into ``out`` or a new array."""
        if out is None:
            out = np.empty((max(0, stop - start), *self.shape[1:]), self.dtype)
        if stop <= start:
            return out
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        for fi in range(first, len(self.files)):
            f0 = self._starts[fi]
            if f0 >= stop:
                break
            a, b = max(start, f0), min(stop, self._starts[fi + 1])
            if b > a:
                read_frames(self.files[fi], a - f0, b - f0, out[a - start : b - start])
        return out
