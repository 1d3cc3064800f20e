"""The README stays true: its option table is the registry's, its Quickstart names real things."""

import re
from pathlib import Path

from betula.config import settings_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_option_table_matches_the_registry():
    block = re.search(r"<!-- options:start -->\n(.*?)<!-- options:end -->", README, re.S)
    assert block, "README lost its options block"
    assert block.group(1).strip() == settings_markdown().strip(), (
        "README option table is stale: run python tools/update_readme.py")


def test_quickstart_has_the_two_commands():
    quick = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", quick, re.S)
    assert commands == ["pip install -e . && betula examples.hello:app",
                        "pip install -e '.[test]' && python -m pytest"]
    assert (ROOT / "examples" / "hello.py").exists()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -e '.[test]' && python -m pytest" in ci


def test_benchmark_table_is_present_and_dated():
    block = re.search(r"<!-- bench:start -->\n(.*?)<!-- bench:end -->", README, re.S)
    assert block and "| hello |" in block.group(1), "run bench/run.py, then tools/update_readme.py"
    block = re.search(r"<!-- bench-ws:start -->\n(.*?)<!-- bench-ws:end -->", README, re.S)
    assert block and "| wsecho |" in block.group(1), \
        "run bench/run.py --scenarios wsecho, then tools/update_readme.py"
    assert re.search(r"\d{4}-\d{2}-\d{2}", block.group(1))
