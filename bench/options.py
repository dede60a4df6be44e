"""Options, declared once as a dataclass and checked here, in the parent, before anything is measured:
a runner's (Runner.Options), converted from `--option RUNNER.KEY=VALUE` strings, and a suite's
(Suite.Options), each field a flag of `bench run` (its metadata: bench.suites.option)."""

from __future__ import annotations

import dataclasses
import types
import typing

from bench.errors import UsageError

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def declared(cls) -> list[dict]:
    """The options a runner class declares: name, type, default and help (the field's metadata)."""
    options = getattr(cls, "Options", None)
    if options is None:
        return []
    hints = typing.get_type_hints(options)
    return [{"name": f.name, "type": type_name(hints[f.name]), "default": f.default,
             "help": f.metadata.get("help", "")} for f in dataclasses.fields(options)]


def convert(runner: str, cls, raw: dict[str, str]) -> dict:
    """{key: text} -> {key: typed value}, checked by the Options class itself; UsageError (one line)
    for an unknown key or a bad value."""
    options = getattr(cls, "Options", None)
    names = [o["name"] for o in declared(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        takes = f"it takes {', '.join(names)}" if names else "it takes none"
        raise UsageError(f"unknown option {runner}.{unknown[0]}: {takes}")
    if not raw:
        return {}
    hints = typing.get_type_hints(options)
    assert options is not None  # declared() found the fields it names
    typed = {key: parse_value(f"{runner}.{key}", text, hints[key]) for key, text in raw.items()}
    try:
        options(**typed)  # its own checks (__post_init__)
    except (TypeError, ValueError, UsageError) as exc:
        raise UsageError(f"bad option for {runner}: {exc}") from None
    return typed


def parse_value(name: str, text, kind):
    """text as kind: int, float, bool, str, or one of them | None ('none' or '' for None)."""
    if not isinstance(text, str):
        return text  # already typed (a test, a plugin calling in)
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if text.lower() in ("", "none"):
            return None
        kind = next(a for a in args if a is not type(None))
    if kind is bool:
        if text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
        raise UsageError(f"bad --option {name}={text!r}: true or false")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise UsageError(f"bad --option {name}={text!r}: {'a whole number' if kind is int else 'a number'}") from None
    return text


def type_name(kind) -> str:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    base = args[0] if args else kind
    return getattr(base, "__name__", str(base)) + (" or none" if args else "")


def suite_flags(suites: dict) -> list[dict]:
    """Every suite option as a flag of `bench run`: suite, field, flag, help, parse, default."""
    found = []
    for suite in suites.values():
        if suite.Options is None:
            continue
        for f in dataclasses.fields(suite.Options):
            found.append({"suite": suite.name, "field": f.name, "flag": f.metadata["flag"], "help": f.metadata["help"],
                          "parse": f.metadata["parse"], "dest": f"suite_{suite.name}_{f.name}", "default": f.default})
    return found


def suite_values(suites: dict, given: dict[str, str]) -> dict[str, dict]:
    """{dest: text} of the flags given -> {suite: {field: typed value}}, each parsed by its field's
    own parse and the whole checked by the Options class; UsageError (one line) otherwise."""
    found: dict[str, dict] = {}
    for flag in suite_flags(suites):
        if given.get(flag["dest"]) is not None:
            found.setdefault(flag["suite"], {})[flag["field"]] = flag["parse"](given[flag["dest"]], flag["flag"])
    for name, values in found.items():
        try:
            suites[name].Options(**values)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"bad option for the {name} suite: {exc}") from None
    return found
