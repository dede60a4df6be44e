from bench.host.taskstats import TaskExit, parse_task_exits, tree_pids


def test_parse_real_exit_record(data_dir):
    facts = dict(line.split(" ", 1) for line in (data_dir / "taskstats_exit_true.txt").read_text().splitlines()[:2])
    exits = parse_task_exits((data_dir / "taskstats_exit_true.bin").read_bytes(), int(facts["family"]))
    mine = [e for e in exits if e.pid == int(facts["pid"])]
    assert len(mine) == 1
    assert 100 < mine[0].hiwater_rss_kib < 10_000  # /bin/true: about 1 MiB
    assert parse_task_exits((data_dir / "taskstats_exit_true.bin").read_bytes(), family=9999) == []


def test_tree_follows_parents_in_any_order():
    exits = [TaskExit(30, 20, 1), TaskExit(20, 10, 1), TaskExit(10, 1, 1), TaskExit(99, 1, 1)]
    assert tree_pids(exits, 10) == {10, 20, 30}
