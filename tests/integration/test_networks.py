"""Every runtime's own disk and network path (issue 29): the peers run the throughput suite's disk
and network workloads and the app suite's services, each the way its users have them, and the host's
own network namespace is left as it was found."""

import json
import subprocess

import pytest

from bench.analysis.store import load_run
from tests.conftest import bench, kill_run_then_clean, sampled

pytestmark = pytest.mark.integration

RUNNERS = ("docker", "docker:network=host", "runc", "bwrap", "lxc", "nspawn", "uml", "microvm", "gvisor")
WORKLOADS = ("disk", "net", "redis")


def host_network() -> dict[str, object]:
    """The host namespace's links, addresses, routes and firewall rules, as comparable text."""

    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout

    links = sorted((link["ifname"], link.get("operstate"), link.get("address")) for link in json.loads(run("ip", "-j", "link")))
    addresses = sorted((a["ifname"], i["local"], i["prefixlen"]) for a in json.loads(run("ip", "-j", "addr"))
                       for i in a.get("addr_info", []))
    rules = [line for line in run("iptables-save").splitlines() if not line.startswith("#")]
    return {"links": links, "addresses": addresses, "routes": run("ip", "route", "show", "table", "all"),
            "iptables": rules, "nftables": run("nft", "list", "ruleset")}


@pytest.fixture(scope="module")
def peers_run(tmp_path_factory):
    """One run of the disk, network and service workloads in the peers, and the host's network
    namespace before and after it."""
    results = tmp_path_factory.mktemp("peers")
    before = host_network()
    out = bench("run", "--suite", "throughput,app", "--workloads", ",".join(WORKLOADS), "--runners", ",".join(RUNNERS),
                "--repeat", "1", "--warmup", "0", "--results-dir", results, "--no-report", timeout=1500)
    assert out.returncode == 0, out.stderr
    df, meta = load_run((results / "latest").resolve())
    return df, meta, before, host_network()


def test_every_runtime_runs_the_disk_network_and_service_workloads(peers_run):
    df, meta, _, _ = peers_run
    assert df["ok"].all(), df[~df["ok"]][["workload", "runner", "error"]].values.tolist()
    for runner in RUNNERS:
        ran = set(df[df["runner"] == runner]["workload"])
        left_out = {key.split("/")[1]: why for key, why in meta["not_run"].items() if key.split("/")[0] == runner}
        assert ran | set(left_out) == set(WORKLOADS), (runner, ran, left_out)
        if runner == "gvisor":  # Debian's runsc netstack refuses our namespaces here: said why, and the variant named
            assert all("gvisor:network=host" in why for why in left_out.values()), left_out
        else:
            assert not left_out, (runner, left_out)
    assert (df[df["metric"] == "disk_randread_iops"]["value"] > 0).all()
    assert (df[df["metric"] == "redis_get_ops_s"]["value"] > 0).all()


def test_docker_runs_in_isobench_s_own_daemon_and_meta_says_how_it_networks(peers_run):
    _, meta, _, _ = peers_run
    docker = meta["runners"]["docker"]
    assert docker["daemon"].startswith("isobench's own dockerd")
    assert docker["dockerd_userland_proxy"] and docker["dockerd_iptables"] and docker["bridge_mtu"]
    assert meta["runners"]["docker:network=host"]["network"] == "host"


def test_a_run_leaves_the_host_network_namespace_as_it_found_it(peers_run):
    _, _, before, after = peers_run
    for part in before:
        assert after[part] == before[part], part


@pytest.mark.parametrize("runner", ["docker", "runc", "nspawn", "uml", "microvm"])
def test_a_killed_networked_run_leaves_nothing_after_bench_clean(tmp_path, runner):
    """Killed while its service is loaded, one runner of each family that networks: the container,
    its CNI namespace or bridge veth, the leases and the volume, a sandbox's or a VM's tap and
    scratch disk all go with `bench clean`."""
    suite = ("--suite", "app", "--workloads", "redis", "--repeat", "500", "--warmup", "0")
    assert kill_run_then_clean(tmp_path, runner, sampled(tmp_path, runner), suite) == "0 leftovers found"
