"""What runs inside every environment: a workload, read from a TOML file, and the guest paths of the
tools isobench brings.

A workload is data. The built-in ones are the files in bench/workloads/ (package data); a
user's come with `bench run --workload-file F`. docs/workloads.md describes the format; every key is
checked here, and a bad file is one line naming the file, the key and what is wrong (UsageError).
Lean: the worker loads workloads too, so nothing fat is imported here.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from bench import parsers
from bench.errors import UsageError
from bench.suites import suites

# isobench's own static tools in every image (bench/guest/*.c, built by bench.images.image)
PROBE_GUEST_PATH = "/bin/bench-probe"
SYSCALL_GUEST_PATH = "/bin/bench-syscall"
RR_GUEST_PATH = "/bin/bench-rr"

WORKLOAD_DIR = Path(__file__).resolve().parent / "workloads"
BUILTIN = "built-in"  # how the origin of a file in WORKLOAD_DIR begins ("built-in: bench/workloads/cpu.toml")

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*\Z")
_METRIC = re.compile(r"[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True)
class Extract:
    """How one metric is read from the workload's output when no parser gives it: the first match of
    a regex (its group named after the metric, or `value`), or a dotted path into the first JSON
    document in the output; then multiplied by scale."""

    metric: str
    regex: str | None = None
    json: str | None = None
    scale: float = 1.0

    def value(self, text: str) -> float:
        if self.regex is not None:
            found = re.search(self.regex, text, re.MULTILINE)
            if not found:
                raise ValueError(f"{self.metric}: no match for /{self.regex}/ in the output")
            group = self.metric if self.metric in found.groupdict() else "value"
            raw = found.group(group)
        elif self.json is not None:
            raw = json_path(text, self.json)
        else:  # load_metrics gives every Extract a regex or a JSON path
            raise ValueError(f"{self.metric}: neither a regex nor a JSON path")
        try:
            return float(raw) * self.scale
        except (TypeError, ValueError):
            raise ValueError(f"{self.metric}: {raw!r} is not a number") from None


@dataclass(frozen=True)
class Server:
    """A program started on the host side for each sample, in the network namespace the runner
    names (bench.servers), before the workload; it is up once `ready` appears in its output."""

    argv: tuple[str, ...]  # host paths; placeholders @SERVER@, @PORT1@, @PORT2@, @ROOTFS@
    ready: str


@dataclass(frozen=True, kw_only=True)
class Workload:
    name: str
    suite: str
    argv: tuple[str, ...]  # guest paths
    description: str
    metrics: tuple[tuple[str, str], ...]  # (metric, unit)
    parser: str | None = None  # a function of bench.parsers: tool output -> value, or {metric: value}
    timeout_s: float = 60.0
    marker: str | None = None  # printed once it is up (startup and memory workloads): "READY"
    scratch: str | None = None  # "own" or "volume": where a disk workload's SCRATCH lives
    servers: tuple[Server, ...] = ()  # host-side servers it talks to at SERVER (bench-rr, iperf3)
    per_n: bool = False  # measured once per --concurrency step, labelled NAME-nN (the scale suite's burst)
    repeat: int | None = None  # rounds when --repeat is not given, if not the suite's (a fill is one sweep)
    extract: tuple[Extract, ...] = ()  # metrics read by regex or JSON path, beside the parser's
    origin: str = BUILTIN  # the file it came from: its absolute path, or "built-in: bench/workloads/NAME.toml"
    digest: str = ""  # sha256 of its file's text, recorded in meta.json for a user's
    order: int = 50  # where it runs and is reported within its suite (then by name)
    # A service (the app suite): the port it listens on (@PORT1@), the client that loads it from the
    # host side once it accepts connections, or the path of the HTTP request whose first answer is
    # timed from the launch (first-response).
    listen: str | None = None
    client: tuple[str, ...] = ()
    http: str | None = None

    @property
    def builtin(self) -> bool:
        return self.origin.startswith(BUILTIN)

    def needs(self) -> set[str]:
        """What a runner must provide to run this workload (Runner.provides)."""
        return ({"scratch"} if self.scratch else set()) | ({"server"} if self.servers or self.listen else set())

    def parse(self, output: str) -> dict[str, float]:
        """The metrics in a run-to-completion workload's output; ValueError when one is not there."""
        found: dict[str, float] = {}
        if self.parser:
            value = getattr(parsers, self.parser)(output)
            found = value if isinstance(value, dict) else {self.metrics[0][0]: value}
        return found | {e.metric: e.value(output) for e in self.extract}

    def to_dict(self) -> dict:
        """Its JSON form, for the worker protocol."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "servers": [{"argv": s.argv, "ready": s.ready} for s in self.servers],
            "extract": [e.__dict__ for e in self.extract]}

    @classmethod
    def from_dict(cls, data: dict) -> Workload:
        return cls(**{**data, "argv": tuple(data["argv"]), "metrics": tuple(tuple(m) for m in data["metrics"]),
                      "client": tuple(data["client"]),
                      "servers": tuple(Server(tuple(s["argv"]), s["ready"]) for s in data["servers"]),
                      "extract": tuple(Extract(**e) for e in data["extract"])})


def json_path(text: str, path: str):
    """The value at a dotted path (a.b.0.c) in the first JSON document of text."""
    import json

    start = text.find("{")
    try:
        value = json.JSONDecoder().raw_decode(text, start)[0] if start >= 0 else None
    except json.JSONDecodeError:
        value = None
    if value is None:
        raise ValueError(f"no JSON document in the output for {path}")
    for part in path.split("."):
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ValueError(f"no {path} in the output's JSON (stopped at {part!r})") from None
    return value


HERE = "@HERE@"  # in a client's argv: the workload file's own directory (a script shipped beside it)
WORKLOADS = "@WORKLOADS@"  # in a client's argv: bench/workloads/, whose wrk-report.lua a user's file may use


class BadWorkloadFile(UsageError):
    def __init__(self, path: Path, key: str, what: str) -> None:
        super().__init__(f"workload file {path}: {key}: {what}" if key else f"workload file {path}: {what}")


MAX_FILE_BYTES = 1 << 20  # a workload is a few lines; anything this big is no workload file
# The placeholders each list may hold (docs/workloads.md); any other @WORD@ is a typo that would
# reach the program as it stands.
PLACEHOLDERS = {"argv": ("@SCRATCH@", "@SERVER@", "@PORT1@", "@PORT2@", "@LISTEN@", "@HOST_L3@", "@IMAGE@"),
                "servers": ("@SERVER@", "@PORT1@", "@PORT2@", "@ROOTFS@"),
                "client": ("@GUEST@", "@PORT1@", "@PORT2@", HERE, WORKLOADS)}
_PLACEHOLDER = re.compile(r"@[A-Z][A-Z0-9_]*@")

KEYS = ("name", "suite", "description", "argv", "metrics", "parser", "timeout_s", "marker", "scratch",
        "servers", "per_n", "repeat", "order", "listen", "client", "http")
METRIC_KEYS = ("name", "unit", "regex", "json", "scale")


def load_file(path: Path, origin: str | None = None) -> Workload:
    """One workload file, every key checked (BadWorkloadFile: one line, file, key, what is wrong)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise BadWorkloadFile(path, "", f"{path.stat().st_size} bytes: a workload file is at most "
                                            f"{MAX_FILE_BYTES >> 20} MiB")
        text = path.read_bytes().decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadWorkloadFile(path, "", f"cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadWorkloadFile(path, "", f"not TOML: {exc}") from None

    def bad(key: str, what: str) -> BadWorkloadFile:
        return BadWorkloadFile(path, key, what)

    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise bad(unknown[0], f"unknown key (known: {', '.join(KEYS)})")
    name = take(data, "name", str, bad, path.stem)
    if not _NAME.match(name):
        raise bad("name", f"{name!r} is not a name: lower-case letters, digits, '-', '_' and '.'")
    known = suites()
    suite_name = take(data, "suite", str, bad)
    if suite_name is None:
        raise bad("suite", f"missing (one of: {', '.join(known)})")
    if suite_name not in known:
        raise bad("suite", f"unknown suite {suite_name!r} (one of: {', '.join(known)})")
    suite = known[suite_name]
    argv = take(data, "argv", list, bad)
    if argv is None and name not in suite.composed:
        raise bad("argv", "missing: the command to run, as a list of strings (guest paths)")
    argv = tuple(argv or ())
    if name not in suite.composed:
        if not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
            raise bad("argv", "must be a list of strings, the program first")
        if not argv[0].startswith("/"):
            raise bad("argv", f"{argv[0]!r}: the program must be an absolute path inside the image")
    parser = take(data, "parser", str, bad)
    if parser is not None:
        choices = sorted(n[len("parse_"):] for n in dir(parsers) if n.startswith("parse_"))
        if parser not in choices:
            raise bad("parser", f"unknown parser {parser!r} (one of: {', '.join(choices)})")
        parser = f"parse_{parser}"
    metrics, extract = load_metrics(data, suite, parser, bad)
    timeout = take(data, "timeout_s", (int, float), bad, 60.0)
    if not timeout > 0:
        raise bad("timeout_s", f"{timeout!r}: must be a positive number of seconds")
    marker = take(data, "marker", str, bad)
    if marker == "":
        raise bad("marker", "must not be empty (the text printed once the workload is up, e.g. READY)")
    scratch = take(data, "scratch", str, bad)
    if scratch not in (None, "own", "volume"):
        raise bad("scratch", f"{scratch!r}: one of own, volume")
    repeat = take(data, "repeat", int, bad)
    if repeat is not None and repeat < 1:
        raise bad("repeat", f"{repeat}: at least 1")
    listen, http = take(data, "listen", str, bad), take(data, "http", str, bad)
    if listen is not None and listen not in ("@PORT1@", "@PORT2@") and not (listen.isdigit() and 0 < int(listen) < 65536):
        raise bad("listen", f"{listen!r}: @PORT1@, @PORT2@ (ports of this run's own) or a port number")
    if suite.needs_marker and not marker and not listen and name not in suite.composed:
        raise bad("marker", f"missing: the {suite_name} suite waits for the text it prints once it is up (READY)")
    client = take(data, "client", list, bad, [])
    if (client or http) and not listen:
        raise bad("client" if client else "http", "needs listen: the port the workload serves on (@PORT1@)")
    if client and (not all(isinstance(a, str) and a for a in client) or not client[0].startswith("/")):
        raise bad("client", "must be a list of strings, first an absolute path on the host")
    if http is not None and not http.startswith("/"):
        raise bad("http", f"{http!r}: the path of the request, such as /index.html")
    if listen and not (client or http):
        raise bad("listen", "give a client that loads the service, or http: the request to time the first answer of")
    here = str(path.resolve().parent)
    client = [a.replace(HERE, here).replace(WORKLOADS, str(WORKLOAD_DIR)) for a in client]
    servers = load_servers(data, bad)
    for key, args in [("argv", argv), ("client", data.get("client", [])),
                      *((f"servers[{i}].argv", s.argv) for i, s in enumerate(servers))]:
        known_placeholders(key, args, bad)
    if client and not host_program(client[0]):
        raise bad("client", f"{client[0]}: no such program on this host (it runs on the host, as root)")
    for i, server in enumerate(servers):
        if not server.argv[0].startswith("@ROOTFS@/") and not host_program(server.argv[0]):
            raise bad(f"servers[{i}].argv", f"{server.argv[0]}: no such program on this host")
    return Workload(name=name, suite=suite_name, argv=argv, description=take(data, "description", str, bad, ""),
                    metrics=metrics, parser=parser, timeout_s=float(timeout), marker=marker, scratch=scratch,
                    servers=servers, per_n=take(data, "per_n", bool, bad, False), repeat=repeat, extract=extract,
                    origin=origin or str(path), digest=hashlib.sha256(text.encode()).hexdigest(),
                    order=take(data, "order", int, bad, 50), listen=listen, client=tuple(client), http=http)


def known_placeholders(key: str, args, bad) -> None:
    allowed = PLACEHOLDERS[key.split("[")[0]]
    for arg in args:
        for found in _PLACEHOLDER.findall(arg):
            if found not in allowed:
                raise bad(key, f"{found} is no placeholder of {key.split('[')[0]} (known: {', '.join(allowed)})")


def host_program(path: str) -> bool:
    import os

    return os.path.isfile(path) and os.access(path, os.X_OK)


def take(data: dict, key: str, kind, bad, default=None):
    """data[key] when it is of the kind (bool is no number here); default when absent."""
    if key not in data:
        return default
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join({"str": "a string", "list": "a list", "int": "a whole number", "float": "a number",
                             "bool": "true or false", "dict": "a table"}[k.__name__] for k in kinds)
        raise bad(key, f"{value!r} is not {names}")
    return value


def load_metrics(data: dict, suite, parser: str | None, bad) -> tuple[tuple, tuple]:
    """(metric, unit) pairs and the per-metric extractors. A suite that parses its workloads' output
    needs a source for each metric: the parser, or the metric's own regex or json."""
    raw = take(data, "metrics", list, bad)
    if raw is None:
        if not suite.metrics:
            raise bad("metrics", "missing: a list of tables with name and unit")
        return suite.metrics, ()
    if not raw:
        raise bad("metrics", "empty: at least one metric")
    metrics: list[tuple[str, str]] = []
    extract: list[Extract] = []
    for i, entry in enumerate(raw):
        key = f"metrics[{i}]"
        if not isinstance(entry, dict):
            raise bad(key, "must be a table with name and unit")
        unknown = sorted(set(entry) - set(METRIC_KEYS))
        if unknown:
            raise bad(f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(METRIC_KEYS)})")
        name, unit = take(entry, "name", str, bad), take(entry, "unit", str, bad)
        if name is None or not _METRIC.match(name):
            raise bad(f"{key}.name", f"{name!r}: a metric name is lower-case letters, digits and '_'")
        if unit is None:
            raise bad(f"{key}.unit", "missing (ms, MiB, ops/s...)")
        if name in dict(metrics):
            raise bad(f"{key}.name", f"{name} is declared twice")
        metrics.append((name, unit))
        regex, path = take(entry, "regex", str, bad), take(entry, "json", str, bad)
        scale = take(entry, "scale", (int, float), bad, 1.0)
        if regex is not None and path is not None:
            raise bad(key, "give regex or json, not both")
        if regex is not None:
            try:
                groups = re.compile(regex).groupindex
            except re.error as exc:
                raise bad(f"{key}.regex", f"not a regular expression: {exc}") from None
            if name not in groups and "value" not in groups:
                raise bad(f"{key}.regex", f"needs a named group (?P<{name}>...) or (?P<value>...)")
        if path is not None and not path:
            raise bad(f"{key}.json", "an empty path")
        if regex is not None or path is not None:
            extract.append(Extract(name, regex, path, float(scale)))
        elif suite.parses_output and parser is None:
            raise bad(f"{key}", f"no source for {name}: give it a regex or json, or the workload a parser")
    return tuple(metrics), tuple(extract)


def load_servers(data: dict, bad) -> tuple[Server, ...]:
    servers = []
    for i, entry in enumerate(take(data, "servers", list, bad, [])):
        key = f"servers[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"argv", "ready"}:
            raise bad(key, "must be a table with argv and ready only")
        argv, ready = take(entry, "argv", list, bad), take(entry, "ready", str, bad)
        if not argv or not all(isinstance(a, str) and a for a in argv) or not argv[0].startswith(("/", "@ROOTFS@/")):
            raise bad(f"{key}.argv", "must be a list of strings, first an absolute path on the host or @ROOTFS@/PATH")
        if not ready:
            raise bad(f"{key}.ready", "missing: the text the server prints once it listens")
        servers.append(Server(tuple(argv), ready))
    return tuple(servers)


@functools.cache
def builtin() -> dict[str, Workload]:
    """Every workload in bench/workloads/, by name."""
    found: dict[str, Workload] = {}
    for path in sorted(WORKLOAD_DIR.glob("*.toml")):
        add(found, load_file(path, f"{BUILTIN}: bench/workloads/{path.name}"), path)
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


def catalogue(files=()) -> dict[str, Workload]:
    """The built-in workloads and those of the files given (--workload-file), by name."""
    found = dict(builtin())
    for path in files:
        add(found, load_file(Path(path), str(Path(path).resolve())), Path(path))
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


def add(found: dict[str, Workload], workload: Workload, path: Path) -> None:
    if workload.name in found:
        other = found[workload.name].origin
        raise BadWorkloadFile(path, "name", f"{workload.name!r} is already a workload ({other}); name it otherwise")
    found[workload.name] = workload


def select(suite_arg: str | None, workload_arg: str | None, files=()) -> list[Workload]:
    """The workloads named by --suite (comma list, or 'all') and --workloads, among the built-in ones
    and those of --workload-file; UsageError otherwise. Without --suite, the files' workloads."""
    known, every = suites(), catalogue(files)
    if suite_arg is None:
        if not files:
            raise UsageError("--suite is required (startup, ... or all), or a --workload-file")
        chosen = [w for w in every.values() if not w.builtin]
        suite_arg = ",".join(dict.fromkeys(w.suite for w in chosen))
        return narrowed(chosen, workload_arg, suite_arg)
    names = list(known) if suite_arg == "all" else [s.strip() for s in suite_arg.split(",") if s.strip()]
    unknown = [s for s in names if s not in known]
    if unknown or not names:
        raise UsageError(f"unknown suite {','.join(unknown) or suite_arg!r}; choose from: {', '.join(sorted(known))}, all")
    chosen = [w for s in known.values() if s.name in names for w in every.values() if w.suite == s.name]
    return narrowed(chosen, workload_arg, suite_arg)


def narrowed(chosen: list[Workload], workload_arg: str | None, suite_arg: str) -> list[Workload]:
    """chosen, narrowed to the names of --workloads when it is given."""
    if workload_arg:
        wanted = [w.strip() for w in workload_arg.split(",") if w.strip()]
        valid = sorted({w.name for w in chosen})
        bad = [w for w in wanted if w not in valid]
        if bad or not wanted:
            raise UsageError(f"unknown workload {','.join(bad) or workload_arg!r} for suite {suite_arg}; choose from: {', '.join(valid)}")
        chosen = [w for w in chosen if w.name in wanted]
    return chosen
