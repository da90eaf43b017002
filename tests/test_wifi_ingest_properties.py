"""Property-based tests of the Wi-Fi normalizer and the ingest keys: the invariants as assertions.

The strategies and checks live in ``functions/wifi_ingest/fuzz.py`` (see its docstring for the invariants), which
also runs them for minutes (``python -m functions.wifi_ingest.fuzz --minutes 10``). Here they run with a bounded
number of examples (``HYPOTHESIS_MAX_EXAMPLES`` raises it) so the suite stays fast.
"""
from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from functions.wifi_ingest import fuzz
from functions.wifi_ingest import handler as handler_module
from functions.wifi_ingest.handler import OutputKeys, RawObject
from functions.wifi_ingest.layout import TABLE_PREFIX

S3_KEY_BYTES = 1024

pytestmark = pytest.mark.property


def examples(default: int) -> settings:
    return settings(max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", default)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@examples(60)
@given(fuzz.portal_files())
def test_every_record_of_a_hostile_portal_file_is_in_the_table_or_the_rejects(tmp_path_factory, case):
    fuzz.check_case(case, str(tmp_path_factory.mktemp("case")))


@examples(80)
@given(fuzz.any_bytes, st.sampled_from([1 << 12, 1 << 14, 3 << 18]))
@example(b"\xf4\x90\x80\x80", 1 << 14)                                   # undecodable UTF-8 lead, in the sample
@example(fuzz.HEADER_UTF8 + b'x,"' + b"y\n" * 50, 1 << 12)              # an unbalanced quote swallowing lines
@example(fuzz.HEADER_CP949 + b"a" * 20_000 + b"\r\n", 1 << 12)          # a record longer than the block
@example(fuzz.HEADER_UTF8[:-1] + b"\xef\xbb\xbf", 1 << 14)              # U+FEFF after the header (fuzz run)
def test_no_exception_escapes_and_counts_add_up_for_any_bytes(tmp_path_factory, data, block):
    fuzz.check_bytes(data, str(tmp_path_factory.mktemp("bytes")), block)


def _unflat(name: str):
    """``table_name``'s inverse, read as its prefix code: the path, or None for a hashed (over-long) name."""
    out, i, csv_suffix = [], 1 if name.startswith("~") else 0, True
    while i < len(name):
        if name[i] != "_":
            out.append(name[i])
            i += 1
        elif i + 1 == len(name):
            csv_suffix, i = False, i + 1
        elif name[i + 1] == "_":
            out.append("/")
            i += 2
        elif name[i + 1] == "h":
            return None
        else:
            assert re.fullmatch("[0-9A-F]{2}", name[i + 1:i + 3]), name
            out.append(chr(int(name[i + 1:i + 3], 16)))
            i += 3
    return "".join(out) + (".csv" if csv_suffix else "")


paths = st.one_of(
    st.text(alphabet="ab_/.~c-", min_size=1, max_size=12),
    st.text(min_size=1, max_size=40).filter(lambda p: "\x00" not in p),
    st.text(alphabet="가_/", min_size=300, max_size=400),                  # too long for one S3 key
)


@examples(300)
@given(st.lists(paths, min_size=2, max_size=6, unique=True))
@example(["a/b.csv", "a__b.csv", "a_b.csv", "a/b", "a__b", ".a.csv", "_a.csv", "~_a.csv"])
def test_two_raw_keys_never_share_table_data_or_quarantine(keys):
    objects = [RawObject("b", "raw/" + k, "v1", None) for k in keys]
    outputs = [OutputKeys.for_object(o) for o in objects]
    assert len({o.data for o in outputs}) == len(keys)
    assert len({o.report for o in outputs}) == len(keys)
    for path, out in zip(keys, outputs, strict=True):
        assert len(out.data.encode("utf-8")) <= S3_KEY_BYTES and len(out.report.encode("utf-8")) <= S3_KEY_BYTES
        name = out.data[len(TABLE_PREFIX):]
        assert name.endswith(".parquet") and "/" not in name and not name.startswith(("_", "."))
        assert _unflat(name[:-len(".parquet")]) in (path, None)


def test_ordinary_names_stay_readable():
    table_name = handler_module.table_name
    assert table_name("2020/전국무료와이파이표준데이터.csv") == "2020__전국무료와이파이표준데이터"
    assert table_name("smoke/20261201T000000Z-ab12cd34.csv") == "smoke__20261201T000000Z-ab12cd34"
    assert table_name("a__b.csv") == "a_5F_5Fb" and table_name("a/b") == "a__b_"
