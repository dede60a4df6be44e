/* bench-container-init: a container's setup from spawn to exec, for runners/container.py.

The harness decides everything (names, paths, which capabilities stay, which /proc paths are
masked) and passes it on the command line; this program only carries it out, in the order that
defines a container:

  1. a new network namespace (with --userns, a user namespace owning it), announced to the
     harness, which plugs a veth pair in while we go on;
  2. new mount, uts, ipc and pid namespaces, and a fork: the child is pid 1 of the new pid
     namespace. This process stays outside as its shim: it tells the harness pid 1's pid, lets go
     of the output, and exits as pid 1 does;
  3. pid 1, once the harness has made its cgroup and overlay dirs: its hostname; an overlay root
     with /dev, /proc and a read-only /sys; pivot_root, the old root detached;
  4. once the veth is in: lo up, eth0 up with its address;
  5. capabilities down to the kept set, no_new_privs; it joins its cgroups, gets a cgroup
     namespace, and execs the workload.

It is C, not Python, because startup is what we measure: a Python child forked from the harness
took ~5 ms more to reach exec (two forks of a Python process, and an exec that tears down its
address space). Any failure is written as one line to the --error descriptor, then exit 127; the
harness reads that descriptor until EOF, which comes when the workload's exec closes it.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LIST 64

struct config {
    int sync_fd, go_fd, error_fd;  /* pid 1's pid to the harness; the harness's go; why we failed */
    const char *hostname, *lower, *base, *volume, *volume_at, *address;
    int userns;
    int no_pidns;                   /* for an A/B only: keep the host's pid namespace */
    const char *join[MAX_LIST];     /* cgroup `tasks` (v1) or cgroup.procs (v2) files */
    int njoin;
    char *devices[MAX_LIST], *readonly[MAX_LIST], *masked[MAX_LIST];
    int ndevices, nreadonly, nmasked;
    unsigned long long keep_caps;   /* bit n: capability n stays in the bounding set */
    const char *seccomp;            /* a BPF program (runners/seccomp_compile.c), loaded last */
    char **argv;                    /* the workload */
};

static int error_fd = -1;

static void fail(const char *fmt, ...)
{
    char msg[512];
    int err = errno;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof msg)
        n = sizeof msg - 1;
    n += snprintf(msg + n, sizeof msg - n, ": %s", strerror(err));
    if (error_fd < 0 || write(error_fd, msg, strlen(msg)) < 0)
        fprintf(stderr, "bench-container-init: %s\n", msg);
    _exit(127);
}

static char *pathf(char *buf, size_t size, const char *fmt, ...)  /* snprintf, never truncated */
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        fail("%.64s...", buf);
    }
    return buf;
}

static int split(char *list, char **out)  /* "a,b,c" -> out[0..2], in place */
{
    int n = 0;
    for (char *tok = strtok(list, ","); tok && n < MAX_LIST; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

static void must_mount(const char *src, const char *target, const char *type, unsigned long flags,
                       const char *data)
{
    if (mount(src, target, type, flags, data) < 0)
        fail("mount %s %s", type ? type : "", target);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- 3. the root filesystem ------------------------------------------------------------- */

static void mount_dev(const char *root, const struct config *c)
{
    /* A tmpfs with the host's device nodes bound in (mknod is refused in a user namespace). */
    char dev[4096], path[4096], src[4096];
    pathf(dev, sizeof dev, "%s/dev", root);
    must_mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=755,size=64k");
    for (int i = 0; i < c->ndevices; i++) {
        pathf(path, sizeof path, "%s/%s", dev, c->devices[i]);
        pathf(src, sizeof src, "/dev/%s", c->devices[i]);
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        if (fd < 0)
            fail("create %s", path);
        close(fd);
        must_mount(src, path, NULL, MS_BIND, NULL);
    }
    pathf(path, sizeof path, "%s/pts", dev);
    if (mkdir(path, 0755) < 0)
        fail("mkdir %s", path);
    must_mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
    pathf(path, sizeof path, "%s/shm", dev);
    if (mkdir(path, 0755) < 0)
        fail("mkdir %s", path);
    must_mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=64m");
    static const char *links[][2] = {{"pts/ptmx", "ptmx"}, {"/proc/self/fd/0", "stdin"},
                                     {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
                                     {"/proc/self/fd", "fd"}};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        pathf(path, sizeof path, "%s/%s", dev, links[i][1]);
        if (symlink(links[i][0], path) < 0)
            fail("symlink %s", path);
    }
}

static void mount_proc(const char *root, const struct config *c)
{
    const unsigned long nosuid = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    char path[4096], null[4096];
    pathf(path, sizeof path, "%s/proc", root);
    must_mount("proc", path, "proc", nosuid, NULL);
    for (int i = 0; i < c->nreadonly; i++) {
        pathf(path, sizeof path, "%s%s", root, c->readonly[i]);
        if (!exists(path))
            continue;
        must_mount(path, path, NULL, MS_BIND, NULL);
        must_mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | nosuid, NULL);
    }
    pathf(null, sizeof null, "%s/dev/null", root);
    for (int i = 0; i < c->nmasked; i++) {
        pathf(path, sizeof path, "%s%s", root, c->masked[i]);
        if (exists(path))
            must_mount(null, path, NULL, MS_BIND, NULL);
    }
}

static void build_root(const struct config *c)
{
    /* /proc and /sys are mounted while the host's are still visible: in a user namespace the
       kernel refuses them otherwise (mount_too_revealing). */
    char root[4096], data[12288], path[4096];
    must_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);  /* nothing propagates to the host */
    pathf(root, sizeof root, "%s/merged", c->base);
    pathf(data, sizeof data, "lowerdir=%s,upperdir=%s/upper,workdir=%s/work", c->lower, c->base, c->base);
    /* nodev on everything the container can write to: with CAP_MKNOD it may create a device
       node, but never open one. Its own /dev entries are bind mounts. */
    must_mount("overlay", root, "overlay", MS_NODEV, data);
    if (c->volume) {
        pathf(path, sizeof path, "%s%s", root, c->volume_at);
        for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); *p++ = '/') {
            *p = 0;  /* mkdir -p */
            if (mkdir(path, 0755) < 0 && errno != EEXIST)
                fail("mkdir %s", path);
        }
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            fail("mkdir %s", path);
        must_mount(c->volume, path, NULL, MS_BIND | MS_REC, NULL);
        must_mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_NODEV | MS_NOSUID, NULL);
    }
    mount_dev(root, c);
    mount_proc(root, c);
    pathf(path, sizeof path, "%s/sys", root);
    must_mount("sysfs", path, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    if (chdir(root) < 0)
        fail("chdir %s", root);
    if (syscall(SYS_pivot_root, ".", ".") < 0)  /* as runc does: the old root stacks on "/" */
        fail("pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        fail("detach the old root");
    if (chdir("/") < 0)
        fail("chdir /");
}

/* ---- 4. the network, over rtnetlink ------------------------------------------------------ */

static void rtnl_request(int fd, struct nlmsghdr *msg)
{
    char reply[4096];
    msg->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    if (send(fd, msg, msg->nlmsg_len, 0) < 0)
        fail("netlink send");
    ssize_t n = recv(fd, reply, sizeof reply, 0);
    if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)))
        fail("netlink reply");
    struct nlmsgerr *err = NLMSG_DATA((struct nlmsghdr *)reply);
    if (err->error) {
        errno = -err->error;
        fail("netlink request %d", msg->nlmsg_type);
    }
}

static void link_up(int fd, const char *name)
{
    struct { struct nlmsghdr h; struct ifinfomsg i; } m = {
        .h = {.nlmsg_len = sizeof m, .nlmsg_type = RTM_NEWLINK},
        .i = {.ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP}};
    if (!(m.i.ifi_index = if_nametoindex(name)))
        fail("no %s", name);
    rtnl_request(fd, &m.h);
}

static void add_address(int fd, const char *name, const char *cidr)
{
    char ip[64];
    struct in_addr addr;
    const char *slash = strchr(cidr, '/');
    if (!slash || slash - cidr >= (int)sizeof ip) {
        errno = EINVAL;
        fail("address %s", cidr);
    }
    memcpy(ip, cidr, slash - cidr);
    ip[slash - cidr] = 0;
    if (inet_pton(AF_INET, ip, &addr) != 1) {
        errno = EINVAL;
        fail("address %s", cidr);
    }
    struct { struct nlmsghdr h; struct ifaddrmsg a; struct rtattr l; struct in_addr local;
             struct rtattr r; struct in_addr remote; } m = {
        .h = {.nlmsg_len = sizeof m, .nlmsg_type = RTM_NEWADDR, .nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL},
        .a = {.ifa_family = AF_INET, .ifa_prefixlen = atoi(slash + 1)},
        .l = {.rta_len = RTA_LENGTH(sizeof addr), .rta_type = IFA_LOCAL}, .local = addr,
        .r = {.rta_len = RTA_LENGTH(sizeof addr), .rta_type = IFA_ADDRESS}, .remote = addr};
    if (!(m.a.ifa_index = if_nametoindex(name)))
        fail("no %s", name);
    rtnl_request(fd, &m.h);
}

static void configure_network(const char *address)
{
    /* lo up; with a bridge, eth0 up with its address. No default route: nothing leaves the bridge. */
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        fail("netlink socket");
    link_up(fd, "lo");
    if (address) {
        add_address(fd, "eth0", address);
        link_up(fd, "eth0");
    }
    close(fd);
}

/* ---- 5. privileges, cgroups, exec ---------------------------------------------------------- */

static void drop_privileges(unsigned long long keep)
{
    /* The bounding set down to the kept capabilities (root's exec then gets no more). */
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        if (cap >= 64 || !(keep >> cap & 1))
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
                fail("drop capability %d", cap);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        fail("clear ambient capabilities");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail("no_new_privs");
}

static struct sock_fprog read_filter(const char *path)  /* while the host's files are visible */
{
    static struct sock_filter program[BPF_MAXINSNS];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, program, sizeof program);
    if (n <= 0 || n % sizeof program[0])
        fail("read the seccomp filter %s", path);
    close(fd);
    return (struct sock_fprog){.len = n / sizeof program[0], .filter = program};
}

static void wait_for_harness(int fd, const char *what)
{
    char go;
    if (read(fd, &go, 1) != 1) {
        errno = EPIPE;
        fail("no word from the harness about %s", what);
    }
}

static void container_init(const struct config *c)
{
    int join_fds[MAX_LIST];
    wait_for_harness(c->go_fd, "the cgroup and the overlay dirs");
    for (int i = 0; i < c->njoin; i++)  /* opened while the host's cgroupfs is visible */
        if ((join_fds[i] = open(c->join[i], O_WRONLY | O_CLOEXEC)) < 0)
            fail("open %s", c->join[i]);
    if (c->userns) {  /* nothing privileged until the harness has written our id maps */
        wait_for_harness(c->go_fd, "the id maps");
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
            fail("become root of the user namespace");
    }
    if (sethostname(c->hostname, strlen(c->hostname)) < 0)
        fail("sethostname");
    struct sock_fprog filter = {0};
    if (c->seccomp)
        filter = read_filter(c->seccomp);
    build_root(c);
    if (!c->userns)
        wait_for_harness(c->go_fd, "the network");
    configure_network(c->address);
    drop_privileges(c->keep_caps);
    /* Last, so that nothing of the setup is charged to the container. A single-threaded process
       writing "0" moves itself alone; see Cgroup.self_join_files. */
    for (int i = 0; i < c->njoin; i++)
        if (write(join_fds[i], "0", 1) != 1)
            fail("join cgroup %s", c->join[i]);
    if (unshare(CLONE_NEWCGROUP) < 0)  /* rooted at the instance cgroup */
        fail("unshare cgroup namespace");
    /* Docker's default policy, last: from here on only the exec (and a failure's write) */
    if (c->seccomp && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter) < 0)
        fail("load the seccomp filter");
    execv(c->argv[0], c->argv);  /* the environment is the harness's GUEST_ENV, passed through */
    fail("exec %s", c->argv[0]);
}

static void shim(pid_t pid1, int null_fd, const struct config *c)
{
    /* pid 1's parent, outside its pid namespace. It shares pid 1's mount namespace, so it must
       not touch a path from here on. */
    char text[32];
    int n = snprintf(text, sizeof text, "%d\n", pid1);
    signal(SIGPIPE, SIG_IGN);  /* only a user namespace's harness reads it; it may have closed the pipe */
    if (write(c->sync_fd, text, n) < 0 && errno != EPIPE)
        fail("tell the harness pid 1");
    close(c->error_fd);
    dup2(null_fd, 1);  /* let go of the output pipe: EOF when the container's last process is gone */
    dup2(null_fd, 2);
    int status;
    while (waitpid(pid1, &status, 0) < 0)
        if (errno != EINTR)
            _exit(127);
    _exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
}

/* ---- the command line ------------------------------------------------------------------------ */

static int fd_arg(const char *text)
{
    int fd = atoi(text);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)  /* the workload gets none of these */
        fail("descriptor %s", text);
    return fd;
}

static void parse(int argc, char **argv, struct config *c)
{
    static const struct option options[] = {
        {"sync", 1, 0, 's'}, {"go", 1, 0, 'g'}, {"error", 1, 0, 'e'}, {"hostname", 1, 0, 'h'},
        {"lower", 1, 0, 'l'}, {"base", 1, 0, 'b'}, {"volume", 1, 0, 'v'}, {"volume-at", 1, 0, 'V'},
        {"address", 1, 0, 'a'}, {"userns", 0, 0, 'u'}, {"join", 1, 0, 'j'}, {"devices", 1, 0, 'd'},
        {"readonly", 1, 0, 'r'}, {"masked", 1, 0, 'm'}, {"keep-caps", 1, 0, 'c'}, {"seccomp", 1, 0, 'S'},
        {"no-pidns", 0, 0, 'P'}, {0, 0, 0, 0}};
    char *caps[MAX_LIST];
    int opt, ncaps;
    *c = (struct config){.sync_fd = -1, .go_fd = -1, .volume_at = "/mnt/volume"};
    while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
        switch (opt) {
        case 's': c->sync_fd = fd_arg(optarg); break;
        case 'g': c->go_fd = fd_arg(optarg); break;
        case 'e': c->error_fd = error_fd = fd_arg(optarg); break;
        case 'h': c->hostname = optarg; break;
        case 'l': c->lower = optarg; break;
        case 'b': c->base = optarg; break;
        case 'v': c->volume = optarg; break;
        case 'V': c->volume_at = optarg; break;
        case 'a': c->address = optarg; break;
        case 'u': c->userns = 1; break;
        case 'j': if (c->njoin < MAX_LIST) c->join[c->njoin++] = optarg; break;
        case 'd': c->ndevices = split(optarg, c->devices); break;
        case 'r': c->nreadonly = split(optarg, c->readonly); break;
        case 'm': c->nmasked = split(optarg, c->masked); break;
        case 'S': c->seccomp = optarg; break;
        case 'P': c->no_pidns = 1; break;
        case 'c':
            ncaps = split(optarg, caps);
            for (int i = 0; i < ncaps; i++)
                c->keep_caps |= 1ULL << (atoi(caps[i]) & 63);
            break;
        default: errno = EINVAL; fail("bad option");
        }
    }
    if (c->sync_fd < 0 || c->go_fd < 0 || !c->hostname || !c->lower || !c->base || optind >= argc) {
        errno = EINVAL;
        fail("usage: bench-container-init --sync FD --go FD --error FD --hostname NAME --lower DIR "
             "--base DIR [options] -- PROG [ARG...]");
    }
    c->argv = argv + optind;
}

int main(int argc, char **argv)
{
    struct config c;
    parse(argc, argv, &c);
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        fail("open /dev/null");
    if (unshare(CLONE_NEWNET | (c.userns ? CLONE_NEWUSER : 0)) < 0)
        fail("unshare the network namespace");
    if (write(c.sync_fd, "n", 1) != 1)
        fail("tell the harness the network namespace");
    if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (c.no_pidns ? 0 : CLONE_NEWPID)) < 0)
        fail("unshare");
    pid_t pid1 = fork();
    if (pid1 < 0)
        fail("fork pid 1");
    if (pid1 > 0)
        shim(pid1, null_fd, &c);
    close(c.sync_fd);
    container_init(&c);
    return 127;
}
