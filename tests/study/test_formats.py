"""FORMATS: one table read by both commands' --format choices and by the report's writers."""

from __future__ import annotations

from nas.cli import build_parser
from nas.study.formats import DEFAULT_FORMAT, FORMATS, format_help
from nas.study.report import tables


def test_every_format_is_a_choice_of_report_and_ablate_and_has_its_writer() -> None:
    parser = build_parser()
    for name, fmt in FORMATS.items():
        assert parser.parse_args(["report", "--format", name]).format == name
        assert parser.parse_args(["ablate", "x.toml", "--format", name]).format == name
        assert name in format_help("x")
        if fmt.kind in ("text", "json"):
            assert callable(getattr(tables, fmt.writer))
    assert FORMATS[DEFAULT_FORMAT].kind == "terminal"
