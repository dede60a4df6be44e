"""The probe's peak RSS against how its page cache was filled (log 2026-12-05-the-night-and-the-page-cache.md).
Run as root from the checkout: .venv/bin/python docs/log/2026-12-05-probe-rss-page-cache.py IMAGE/rootfs/bin/bench-probe"""
import os, sys, collections
from bench.host.taskstats import TaskstatsListener
path = sys.argv[1]
ts = TaskstatsListener()
def once():
    ts.reset()
    pid = os.posix_spawn(path, [path], {"PATH": "/bin"}, file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
    os.waitpid(pid, 0); return ts.tree_peak_kib(pid)
for pre in [None, (0, 4096), (0, 65536), (4096*50, 4096), (4096*100, 65536), "pages"]:
    fd = os.open(path, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    if pre == "pages":
        for off in range(0, 762328, 8192): os.pread(fd, 1, off)  # odd pages only... with readahead though
    elif pre: os.pread(fd, pre[1], pre[0])
    os.close(fd)
    print(pre, [once() for _ in range(5)])
