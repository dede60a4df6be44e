"""Host plumbing the runners share: Linux calls, netlink, taskstats, cgroups, bridges and veths."""
