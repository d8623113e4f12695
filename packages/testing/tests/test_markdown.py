"""The Markdown example runner: what it runs, what it compares, what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from deepagents_redis.testing.markdown import ExampleFailed, examples, run_page

PAGE = """# A page

```python
x = 2
print(x * 21)
```

```text
42
```

<!-- hidden from readers, run all the same
```python
y = x + 1
```
-->

```py
print("shown, never run")
```

```python
print(y)
```
"""


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text)
    return page


def test_blocks_share_a_namespace_and_outputs_pair_with_their_block() -> None:
    found = examples(PAGE)
    assert [e.code.strip().splitlines()[0] for e in found] == ["x = 2", "y = x + 1", "print(y)"]
    assert [e.output for e in found] == ["42\n", None, None]
    assert found[0].line == 4  # the page line of the first code line


def test_a_page_runs_and_its_unchecked_output_is_passed_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", "redis://127.0.0.1:1/0")
    assert run_page(_page(tmp_path, PAGE)) == 3
    assert capsys.readouterr().out == "3\n"


def test_a_wrong_output_names_the_line_and_shows_a_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", "redis://127.0.0.1:1/0")
    page = _page(tmp_path, PAGE.replace("42\n```", "41\n```"))
    with pytest.raises(ExampleFailed, match=r"page\.md:4: the output differs") as failed:
        run_page(page)
    assert "-41" in str(failed.value)
    assert "+42" in str(failed.value)


def test_a_raising_block_names_its_page_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(ExampleFailed, match=r"page\.md:2: the example raised NameError"):
        run_page(_page(tmp_path, "```python\nprint(nope)\n```\n"))


@pytest.mark.parametrize(
    "line",
    [
        'c = Redis.from_url("redis://localhost:6379/0")',
        'c = Redis.from_url("redis://127.0.0.1")',
        'c = Redis.from_url("rediss://user:pw@localhost/1")',
    ],
)
def test_the_default_local_server_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", "redis://127.0.0.1:1/0")
    page = _page(tmp_path, f"```python\nraise SystemExit('ran')\n{line}\n```\n")
    with pytest.raises(ExampleFailed, match="names the default local server"):
        run_page(page)


def test_the_readers_fallback_and_comments_are_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPAGENTS_REDIS_URL", "redis://127.0.0.1:1/0")
    code = (
        "import os\n"
        'url = os.environ.get("DEEPAGENTS_REDIS_URL", "redis://localhost:6379/0")\n'
        "other = 'redis://localhost:6380/0'  # e.g. redis://localhost:6379/0\n"
    )
    assert run_page(_page(tmp_path, f"```python\n{code}```\n")) == 1


def test_no_url_no_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPAGENTS_REDIS_URL", raising=False)
    with pytest.raises(ExampleFailed, match="set DEEPAGENTS_REDIS_URL"):
        run_page(_page(tmp_path, "```python\nprint(1)\n```\n"))
