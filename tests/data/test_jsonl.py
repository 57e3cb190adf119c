"""comam_env.data.jsonl.iter_jsonl: values per non-blank line, bad lines named by file and line."""

from __future__ import annotations

import pytest

from comam_env.data.jsonl import iter_jsonl


def test_values_with_line_numbers_blank_lines_skipped(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n  \n[2]\n"s"\n', encoding="utf-8")
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (4, [2]), (5, "s")]


@pytest.mark.parametrize("content,message", [
    (b'{"a": 1}\n{oops\n', "line 2: invalid JSON"),
    (b'{"a": 1}\n"\xff"\n', "line 2: not UTF-8"),
    (b"[" * 100_000 + b"\n", "line 1: JSON nested too deeply"),
])
def test_bad_lines_raise_the_callers_error_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as exc:
        list(iter_jsonl(path))
    assert str(path) in str(exc.value)

    class Custom(Exception):
        pass

    with pytest.raises(Custom):
        list(iter_jsonl(path, lambda p, msg, line: Custom(f"{p}:{line}: {msg}")))
