"""Workload files: the built-in workloads are files, a user's file is checked key by key, and a bad
one is one line naming the file, the key and what is wrong, with exit 2."""

import json

import pytest

from bench.cli import main
from bench.suites.scale import NEIGHBOUR_METRICS
from bench.workload import WORKLOAD_DIR, Workload, builtin, catalogue, load_file

GOOD = '''
suite = "throughput"
description = "counts to a million in the shell"
argv = ["/bin/sh", "-c", "echo 'took 12.5 ms'; echo '{\\"result\\": {\\"rate\\": 2000}}'"]
timeout_s = 30
metrics = [
  { name = "took_ms", unit = "ms", regex = 'took (?P<value>[\\d.]+) ms' },
  { name = "rate_k", unit = "k/s", json = "result.rate", scale = 0.001 },
]
'''


def write(tmp_path, text, name="mine.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_built_in_workload_is_a_file_in_workloads_and_says_so():
    files = sorted(p.stem for p in WORKLOAD_DIR.glob("*.toml"))
    assert sorted(builtin()) == files and len(files) >= 13
    assert all(w.builtin and w.origin == f"built-in: bench/workloads/{w.name}.toml" for w in builtin().values())
    # the suite's code builds neighbours' argv; its file declares the metrics that code gives
    assert builtin()["neighbours"].metrics == NEIGHBOUR_METRICS
    # the startup file names no metrics: the suite's own
    assert [m for m, _ in builtin()["probe"].metrics] == ["ready_ms", "exit_ms", "teardown_ms", "mem_peak_mib"]


def test_a_user_file_reads_its_metrics_by_regex_and_json_path(tmp_path):
    w = load_file(write(tmp_path, GOOD))
    assert (w.name, w.suite, w.timeout_s, w.builtin) == ("mine", "throughput", 30.0, False)
    assert w.parse("took 12.5 ms\n{\"result\": {\"rate\": 2000}}\n") == {"took_ms": 12.5, "rate_k": 2.0}
    with pytest.raises(ValueError, match="took_ms: no match"):
        w.parse("nothing here")
    assert Workload.from_dict(json.loads(json.dumps(w.to_dict()))) == w  # as the worker gets it


def test_list_workloads_shows_where_each_came_from(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["list", "workloads", "--json", "--workload-file", str(path)]) == 0
    rows = {w["name"]: w["origin"] for w in json.loads(capsys.readouterr().out)["workloads"]}
    assert rows["cpu"] == "built-in: bench/workloads/cpu.toml" and rows["mine"] == str(path.resolve())


def test_a_name_taken_twice_is_refused(tmp_path):
    with pytest.raises(Exception, match="'cpu' is already a workload"):
        catalogue([write(tmp_path, GOOD, "cpu.toml")])


BAD = [
    ("not toml", "suite = ", "not TOML"),
    ("unknown key", GOOD + "colour = 'red'\n", "colour: unknown key"),
    ("no suite", GOOD.replace('suite = "throughput"', ""), "suite: missing"),
    ("unknown suite", GOOD.replace('"throughput"', '"speed"'), "suite: unknown suite 'speed'"),
    ("no argv", "\n".join(ln for ln in GOOD.splitlines() if not ln.startswith("argv")), "argv: missing"),
    ("argv not a list", GOOD.replace('argv = [', 'argv = "x" #['), "argv: 'x' is not a list"),
    ("relative program", GOOD.replace('"/bin/sh"', '"sh"'), "argv: 'sh': the program must be an absolute path"),
    ("bad timeout", GOOD.replace("timeout_s = 30", "timeout_s = -1"), "timeout_s: -1: must be a positive"),
    ("timeout a string", GOOD.replace("timeout_s = 30", 'timeout_s = "30"'), "timeout_s: '30' is not"),
    ("unknown parser", GOOD + 'parser = "magic"\n', "parser: unknown parser 'magic'"),
    ("metric without unit", GOOD.replace('unit = "ms", ', ""), "metrics[0].unit: missing"),
    ("bad metric name", GOOD.replace('"took_ms"', '"Took ms"'), "metrics[0].name"),
    ("metric twice", GOOD.replace('"rate_k"', '"took_ms"'), "metrics[1].name: took_ms is declared twice"),
    ("bad regex", GOOD.replace("took (?P<value>", "took ((?P<value>"), "metrics[0].regex: not a regular"),
    ("regex without group", GOOD.replace("(?P<value>[\\d.]+)", "[\\d.]+"), "metrics[0].regex: needs a named group"),
    ("no source", GOOD.replace(', json = "result.rate", scale = 0.001', ""), "metrics[1]: no source for rate_k"),
    ("bad scratch", GOOD + 'scratch = "ramdisk"\n', "scratch: 'ramdisk': one of own, volume"),
    ("bad server", GOOD + 'servers = [{ argv = ["iperf3"], ready = "listening" }]\n', "servers[0].argv"),
    ("server without ready", GOOD + 'servers = [{ argv = ["/usr/bin/iperf3"] }]\n', "servers[0].ready: missing"),
    ("client without listen", GOOD + 'client = ["/usr/bin/wrk"]\n', "client: needs listen"),
    ("listen alone", GOOD + 'listen = "@PORT1@"\n', "listen: give a client"),
    ("relative client", GOOD + 'listen = "@PORT1@"\nclient = ["wrk"]\n', "client: must be a list of strings, first an absolute"),
    ("bad http path", GOOD + 'listen = "@PORT1@"\nhttp = "index.html"\n', "http: 'index.html': the path"),
    ("bad listen", GOOD + 'listen = "eighty"\nhttp = "/"\n', "listen: 'eighty': @PORT1@"),
    ("startup without marker", GOOD.replace('"throughput"', '"startup"'), "marker: missing: the startup suite waits"),
    ("client not on the host", GOOD + 'listen = "@PORT1@"\nclient = ["/usr/bin/no-such-client", "@GUEST@"]\n',
     "client: /usr/bin/no-such-client: no such program on this host"),
    ("server not on the host", GOOD + 'servers = [{ argv = ["/usr/bin/no-such-server"], ready = "up" }]\n',
     "servers[0].argv: /usr/bin/no-such-server: no such program on this host"),
    ("undefined placeholder", GOOD.replace('"/bin/sh", "-c"', '"/bin/sh", "-c", "@SCRACH@"'),
     "argv: @SCRACH@ is no placeholder of argv (known: @SCRATCH@"),
    ("a client's placeholder in argv", GOOD.replace('"/bin/sh", "-c"', '"/bin/sh", "-c", "@GUEST@"'),
     "argv: @GUEST@ is no placeholder of argv"),
    ("undefined placeholder in a server", GOOD + 'servers = [{ argv = ["/usr/bin/iperf3", "-p", "@PORT3@"], '
     'ready = "up" }]\n', "servers[0].argv: @PORT3@ is no placeholder of servers"),
    ("10 MB file", GOOD + "#" * (10 << 20) + "\n", "bytes: a workload file is at most 1 MiB"),
]


@pytest.mark.parametrize("case, text, message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_is_one_line_naming_file_and_key_and_exit_2(case, text, message, tmp_path, capsys):
    path = write(tmp_path, text)
    assert main(["run", "--workload-file", str(path), "--runners", "process", "--results-dir",
                 str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert f"workload file {path}" in err and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "results").exists()  # refused before anything ran


def test_a_missing_file_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["list", "workloads", "--workload-file", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err
    assert "nope.toml: cannot read it (No such file or directory)" in err and err.count("\n") == 1
