"""Source text (CP949 or UTF-8) to UTF-8, chunk by chunk, for the CSV parser.

Two implementations of one contract, ``convert(data, final) -> UTF-8 bytes``: a sequence split across chunks is
carried over; an invalid one becomes U+FFFD and is counted (``invalid``): the normalizer then looks for U+FFFD to
reject the records holding one.

- ``IconvTranscoder``: glibc's iconv through ctypes. It converts at C speed and, being a foreign call, runs without
  the GIL, so transcoding on the reader's thread overlaps the parsing and conversion on the main thread (the
  benchmark's iconv comparison is the same library);
- ``CodecTranscoder``: Python's codecs (decode, then encode), used where the C library has no converter for the
  encoding (a libc without iconv, or without the CP949/UHC gconv module), and always for UTF-8 sources.

UTF-8 sources are never given to iconv: glibc's UTF-8 decoder passes sequences above U+10FFFF (``F4 90 80 80``)
and the old 5- and 6-byte forms (``F8 88 80 80 80``) through as "valid", and Arrow's parser then refuses the whole
file ("invalid UTF8 data"). Python's decoder follows the Unicode standard; valid chunks are passed on as they are
(only validated), so the common case costs one decode and no encode.

``open_transcoder`` picks the first that works; the report names it (``transcoder``).
"""
from __future__ import annotations

import codecs
import ctypes
import ctypes.util
import errno
import functools
import threading

REPLACEMENT = "\ufffd".encode()
# Python codec name -> what glibc calls it (CP949 is Microsoft's "unified Hangul code", glibc's UHC). Not UTF-8:
# glibc accepts code points above U+10FFFF and 5/6-byte forms there (see above).
_ICONV_NAMES = {"cp949": b"CP949"}
_FAILED = ctypes.c_size_t(-1).value


@functools.lru_cache(maxsize=1)
def _iconv_library() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name, use_errno=True)
        lib.iconv_open.restype = ctypes.c_void_p
        lib.iconv_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.iconv.restype = ctypes.c_size_t
        pointer, size = ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)
        lib.iconv.argtypes = [ctypes.c_void_p, pointer, size, pointer, size]
        lib.iconv_close.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return lib


class IconvTranscoder:
    name = "iconv"

    _handle = None

    def __init__(self, encoding: str) -> None:
        lib = _iconv_library()
        source = _ICONV_NAMES.get(codecs.lookup(encoding).name)
        if lib is None or source is None:
            raise LookupError(f"no iconv converter for {encoding}")
        handle = lib.iconv_open(b"UTF-8", source)
        if handle is None or handle == _FAILED:
            raise LookupError(f"iconv cannot convert {encoding} on this machine (errno {ctypes.get_errno()})")
        self._lib, self._handle = lib, handle
        self._carry = b""
        self._out = ctypes.create_string_buffer(0)
        self.invalid = 0

    def convert(self, data: bytes, final: bool = False) -> bytes:
        if self._carry:
            data, self._carry = self._carry + data, b""
        if not data:
            return b""
        if len(self._out) < 2 * len(data) + 16:   # CP949's two bytes are at most three in UTF-8
            self._out = ctypes.create_string_buffer(2 * len(data) + 16)
        out, room = self._out, len(self._out)
        base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value   # ``data`` stays referenced below
        in_ptr, in_left = ctypes.c_void_p(base), ctypes.c_size_t(len(data))
        parts = []
        while in_left.value:
            out_ptr, out_left = ctypes.c_void_p(ctypes.addressof(out)), ctypes.c_size_t(room)
            failed = self._lib.iconv(self._handle, ctypes.byref(in_ptr), ctypes.byref(in_left),
                                     ctypes.byref(out_ptr), ctypes.byref(out_left)) == _FAILED
            error = ctypes.get_errno() if failed else 0
            parts.append(ctypes.string_at(out, room - out_left.value))
            if not failed or error == errno.E2BIG:
                continue
            if error == errno.EINVAL and not final:          # a sequence split by the chunk boundary
                self._carry = data[len(data) - in_left.value:]
                break
            if error not in (errno.EILSEQ, errno.EINVAL):
                raise OSError(error, f"iconv failed: {errno.errorcode.get(error, error)}")
            parts.append(REPLACEMENT)                         # invalid (or truncated at the end): skip one byte
            self.invalid += 1
            in_ptr.value = _next_byte(in_ptr)
            in_left.value -= 1
        return b"".join(parts)

    def close(self) -> None:
        if self._handle is not None:
            self._lib.iconv_close(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()


def _next_byte(pointer: ctypes.c_void_p) -> int:
    """The address after the one ``pointer`` holds (iconv advances it within the input, which is never empty)."""
    if pointer.value is None:
        raise RuntimeError("iconv left a null input pointer")   # a defect, not an I/O fault the Lambda should retry
    return pointer.value + 1


class _CountedReplace:
    """Codec error handler: "replace", counted per thread (each transcoder reads the difference on its thread)."""

    name = "wifi_ingest.counted-replace"
    _counts = threading.local()

    @classmethod
    def count(cls) -> int:
        return getattr(cls._counts, "n", 0)

    @classmethod
    def handle(cls, err: UnicodeError) -> tuple[str, int]:
        if not isinstance(err, UnicodeDecodeError):    # as codecs' own handlers say for what they cannot handle
            raise TypeError(f"don't know how to handle {type(err).__name__} in error callback")
        cls._counts.n = cls.count() + 1
        return "\ufffd", err.end


codecs.register_error(_CountedReplace.name, _CountedReplace.handle)


def _complete_utf8(data: bytes) -> int:
    """Length of ``data`` without a UTF-8 sequence cut short at its end (which waits for the next chunk)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:                                     # a lead byte (or ASCII)
            need = 2 if 0xC2 <= byte <= 0xDF else 3 if 0xE0 <= byte <= 0xEF else 4 if 0xF0 <= byte <= 0xF4 else 1
            return len(data) - back if need > back else len(data)
    return len(data)


class CodecTranscoder:
    name = "python-codecs"

    def __init__(self, encoding: str) -> None:
        self._utf8 = codecs.lookup(encoding).name == "utf-8"
        self._decoder = codecs.getincrementaldecoder(encoding)(errors=_CountedReplace.name)
        self._carry = b""
        self.invalid = 0

    def convert(self, data: bytes, final: bool = False) -> bytes:
        if self._utf8:
            return self._check_utf8(data, final)
        before = _CountedReplace.count()
        text = self._decoder.decode(data, final=final)
        self.invalid += _CountedReplace.count() - before
        return text.encode("utf-8")

    def _check_utf8(self, data: bytes, final: bool) -> bytes:
        if self._carry:
            data, self._carry = self._carry + data, b""
        if not final:
            cut = _complete_utf8(data)
            data, self._carry = data[:cut], data[cut:]
        try:
            data.decode("utf-8")
            return data
        except UnicodeDecodeError:
            before = _CountedReplace.count()
            text = data.decode("utf-8", errors=_CountedReplace.name)
            self.invalid += _CountedReplace.count() - before
            return text.encode("utf-8")

    def close(self) -> None:
        pass


Transcoder = IconvTranscoder | CodecTranscoder


def open_transcoder(encoding: str, prefer_iconv: bool = True) -> Transcoder:
    """The fastest correct transcoder for ``encoding`` this machine has (``prefer_iconv=False`` forces Python's
    codecs; UTF-8 always uses them, see above)."""
    if prefer_iconv and codecs.lookup(encoding).name != "utf-8":
        try:
            return IconvTranscoder(encoding)
        except LookupError:
            pass
    return CodecTranscoder(encoding)
