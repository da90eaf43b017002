"""The two transcoders agree with Python's own decoding, across any chunk split and with invalid bytes."""
from __future__ import annotations

import pytest

from functions.wifi_ingest import sample
from functions.wifi_ingest.transcode import CodecTranscoder, IconvTranscoder, open_transcoder

TRANSCODERS = [IconvTranscoder, CodecTranscoder]


def source(encoding: str) -> bytes:
    data = bytearray(sample.file_bytes(sample.records(300, seed=11), encoding=encoding))
    for at in (10, 4_000, len(data) // 2, len(data) - 1):   # invalid bytes here and there, one at the very end
        data[at] = 0xFF
    return bytes(data) + "똠".encode(encoding)[:1]            # and a sequence cut short by the end of the file


def transcode(transcoder, data: bytes, step: int) -> bytes:
    parts = [transcoder.convert(data[i:i + step], final=i + step >= len(data)) for i in range(0, len(data), step)]
    return b"".join(parts)


# UTF-8 never goes through iconv (test_iconv_refuses_utf8), so that pair is not a case.
@pytest.mark.parametrize("kind, encoding", [(IconvTranscoder, "cp949"), (CodecTranscoder, "cp949"),
                                            (CodecTranscoder, "utf-8")], ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("step", [1, 3, 4096, 1 << 20])
def test_same_text_as_python_decoding_whatever_the_chunks(kind, encoding, step):
    data = source(encoding)
    if step < 10:
        data = data[:3000] + data[-50:]
    want = data.decode(encoding, errors="replace").encode("utf-8")
    transcoder = kind(encoding)
    got = transcode(transcoder, data, step)
    assert got == want
    assert transcoder.invalid == want.count("\ufffd".encode()) > 0
    transcoder.close()


def test_valid_input_counts_no_replacement():
    data = sample.file_bytes(sample.records(50, seed=12), encoding="cp949")
    for kind in TRANSCODERS:
        transcoder = kind("cp949")
        assert transcode(transcoder, data, 777) == data.decode("cp949").encode("utf-8")
        assert transcoder.invalid == 0


def test_iconv_is_used_where_the_c_library_has_the_converter():
    # glibc with its gconv modules (Debian, Amazon Linux): the fast path; the report names the one used
    assert open_transcoder("cp949").name == "iconv"
    assert open_transcoder("cp949", prefer_iconv=False).name == "python-codecs"


def test_an_encoding_iconv_lacks_falls_back_to_python_codecs():
    assert open_transcoder("cp1252").name == "python-codecs"
