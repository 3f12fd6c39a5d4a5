"""README text that shows output is checked against a real run, so it cannot drift (issue 12,
item 10): the training flags and their choices, the gradient-check table and failure report,
and the ``tinygraph.testing`` snippet."""

import argparse
import contextlib
import io
import linecache
import re
import sys
from pathlib import Path

import pytest

import tinygraph as tg
from models import train
from tinygraph.gradcheck.__main__ import main as gradcheck_main
from tinygraph.primitive import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_blocks(language: str = "") -> list[str]:
    """The fenced blocks of the README whose fence names ``language`` ("" : none)."""
    blocks, current, fence = [], None, None
    for line in README.splitlines():
        if line.startswith("```"):
            if current is None:
                current, fence = [], line[3:].strip()
            else:
                if fence == language:
                    blocks.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def run_gradcheck(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = gradcheck_main(list(argv))
    return status, out.getvalue()


# --- the training flags


def _flags_paragraph() -> str:
    start = README.index("- **Flags**:")
    paragraph = README[start:README.index("\n- ", start + 1)]
    return " ".join(paragraph.split())


def _options(parser: argparse.ArgumentParser) -> dict[str, list[str] | None]:
    """Every long option of ``parser`` and its choices (None: free value or a switch)."""
    options = {}
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                options[option] = list(action.choices) if action.choices else None
    return options


def test_every_training_flag_is_in_the_readme_with_its_choices():
    text = _flags_paragraph()
    options = _options(train.build_parser())
    mentioned = set(re.findall(r"--[a-z][a-z-]*", text))
    # The README lists the settings; --out, --resume and --no-progress are explained in the
    # paragraphs on outputs and resuming.
    elsewhere = {"--data", "--out", "--resume", "--no-progress", "--no-trace"}
    assert mentioned - set(options) - elsewhere == set(), "README names flags the CLI lacks"
    assert set(options) - mentioned - elsewhere == set(), "flags missing from the README"
    for flag, choices in re.findall(r"`(--[a-z-]+) \{([^}]*)\}`", text):
        expected = options[flag] if options[flag] is not None else _choices_in_help(flag)
        assert sorted(choices.split(",")) == sorted(expected), flag


def _choices_in_help(flag: str) -> list[str]:
    # --arch is checked by the program (one-line error), not by argparse; its metavar lists them
    action = next(a for a in train.build_parser()._actions if flag in a.option_strings)
    return action.metavar.strip("{}").split(",")


def test_every_flag_choice_list_in_the_readme_is_the_clis():
    options = _options(train.build_parser())
    text = " ".join(README.split())
    for flag, choices in re.findall(r"`(--[a-z-]+) \{([^}]*)\}`", text):
        assert flag in options, flag
        expected = options[flag] if options[flag] is not None else _choices_in_help(flag)
        assert sorted(choices.split(",")) == sorted(expected), flag


# --- the gradient-check report


def _readme_block_containing(marker: str) -> list[str]:
    block = next(b for b in readme_blocks() if marker in b)
    return block.splitlines()


def test_the_gradcheck_table_is_a_real_run_at_its_seed():
    lines = _readme_block_containing("all ")
    rows = [line.split() for line in lines[1:] if line.strip() and line != "..." and
            not line.startswith("all ")]
    ops = sorted({row[0] for row in rows})
    status, output = run_gradcheck(*[f"--op={op}" for op in ops], "--seed", "0")
    assert status == 0
    real = [line.split() for line in output.splitlines()]
    assert lines[0].split() == real[0]  # the header
    for row in rows:
        assert row in real, f"README row {' '.join(row)} is not what a run at seed 0 prints"
    # The summary: every registered op at orders 1 and 2, 100 examples each.
    summary = next(line for line in lines if line.startswith("all "))
    count = sum(op.module.startswith("tinygraph.") for op in tg.registry().values())
    assert summary.startswith(f"all {2 * count} checks passed: {count} ops "
                              f"({200 * count} examples); orders 1, 2; seed 0; ")


WRONG_CUBE = '''
import tinygraph as tg

@tg.primitive
def cube(x):
    return x ** 3

@cube.defvjp
def cube_vjp(grad_out, out, x):
    return grad_out * 2 * x ** 2      # wrong: the README's example of a failing rule
'''


@pytest.fixture
def own_registry():
    """The ops a test registers (its ``cube``s) are unregistered afterwards."""
    saved, modules = dict(REGISTRY), set(sys.modules)
    REGISTRY.pop("cube", None)  # (another test may have registered the README's own cube)
    yield
    REGISTRY.clear()
    REGISTRY.update(saved)
    for name in set(sys.modules) - modules:
        if name.startswith("myops_readme"):
            del sys.modules[name]


def test_the_failure_report_is_a_real_run_of_the_wrong_rule(tmp_path, monkeypatch,
                                                             own_registry):
    pytest.importorskip("hypothesis", reason="the report's shrinking needs hypothesis")
    (tmp_path / "myops_readme.py").write_text(WRONG_CUBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    lines = _readme_block_containing("FAIL op cube")
    status, output = run_gradcheck("--import", "myops_readme", "--op", "cube", "--seed", "0",
                                   "--order", "1")
    assert status == 1
    real = output.replace("myops_readme", "myops").splitlines()
    position = 0
    for line in lines:  # each shown line, in order ("..." elides some)
        if line.strip() == "...":
            continue
        assert line in real[position:], f"README line {line!r} is not in the real report"
        position = real.index(line, position) + 1


# --- the tinygraph.testing snippet


def test_the_testing_snippet_passes_on_the_right_rule_and_fails_on_the_wrong_one(own_registry):
    pytest.importorskip("hypothesis", reason="tinygraph.testing needs hypothesis")
    snippet = next(b for b in readme_blocks("python") if "assert_op_gradients" in b)
    namespace: dict = {"tg": tg}
    exec(WRONG_CUBE, namespace)  # noqa: S102
    right = namespace["cube"]
    right.defvjp(lambda grad_out, out, x: grad_out * 3 * x ** 2)
    # A file name of its own, with its lines in linecache: hypothesis reads the test's source
    # (Python 3.13 tokenizes it), which must be the snippet's, not README.md's first lines.
    name = "<README.md: the tinygraph.testing snippet>"
    linecache.cache[name] = (len(snippet), None, snippet.splitlines(True), name)
    exec(compile(snippet, name, "exec"), namespace)  # noqa: S102
    namespace["test_cube"]()
    namespace["test_cube_inputs"]()
    wrong: dict = {"tg": tg}
    exec(WRONG_CUBE, wrong)  # noqa: S102
    namespace["cube"] = wrong["cube"]
    with pytest.raises(AssertionError, match="FAIL op cube at order 1"):
        namespace["test_cube"]()
