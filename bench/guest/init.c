/* isobench guest init (/init of the VM's small initramfs, static).

It mounts the guest rootfs (the same tree as every runner's: an ext4 disk with serial bench-root,
read-only) and runs the workload chrooted into it. Everything comes on the kernel command line:
  bench.argv=BASE64   the workload's argv, NUL-separated
  bench.modules=A,B   kernel modules to load from /lib/modules, dependencies first
  bench.scratch=SER   a virtio disk (by serial) to mount at /mnt/scratch, or /dev/NAME (UML's ubdb)
  bench.net=A/P       eth0's address (the host's tap is the only peer: no default route)
  bench.root=DEV      the root disk's device, where it has no serial to be found by (UML's ubda)
  bench.poweroff      power off, not reset, when no host is there any more (UML restarts on a reset)
  bench.wait          with everything mounted, print "BENCH-WAIT" and read the argv (base64, as
                      bench.argv) as one line from the console: the vm-restore runner saves the guest
                      while it waits here, and hands each restored copy its workload
The workload's exit code goes back over the console as "BENCH-EXIT <code>", after
"BENCH-MEM <MemTotal kB> <MemAvailable kB>"; the host destroys the domain when it reads that.

It is C, not a shell script, because startup is what we measure: under emulation every fork and
exec of busybox cost 10 to 25 ms, and the script needed about fifteen before the workload ran.
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define ROOT "/newroot"

static char *const GUEST_ENV[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                  "HOME=/", "TERM=linux", NULL};

static void warn(const char *what, const char *arg)
{
    printf("BENCH-WARN cannot %s %s: %s\n", what, arg, strerror(errno));
    fflush(stdout);
}

static int try_mount(const char *src, const char *target, const char *type, unsigned long flags,
                     const char *data)
{
    if (mount(src, target, type, flags, data) == 0)
        return 0;
    warn("mount", target);
    return -1;
}

static int b64(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static size_t base64_decode(const char *in, char *out)  /* stops at '=' or a non-base64 char */
{
    size_t n = 0;
    unsigned bits = 0, acc = 0;
    for (int v; (v = b64((unsigned char)*in)) >= 0; in++) {
        acc = acc << 6 | v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            out[n++] = acc >> bits & 0xff;
        }
    }
    return n;
}

static int unpack_argv(const char *packed, char *args, char **argv)  /* NUL-separated, in base64 */
{
    int argc = 0;
    size_t len = base64_decode(packed, args);
    for (size_t i = 0; i < len && argc < 255; i += strlen(args + i) + 1)
        argv[argc++] = args + i;
    argv[argc] = NULL;
    return argc;
}

static int wait_for_argv(char *args, char **argv)
{
    /* No echo, no line editing: the host writes one line and nothing else reads the console. */
    static char line[8192];
    struct termios t;
    if (tcgetattr(0, &t) == 0) {
        t.c_lflag &= ~(ECHO | ICANON | ISIG);
        t.c_iflag &= ~(ICRNL | IXON);
        t.c_cc[VMIN] = 1, t.c_cc[VTIME] = 0;
        tcsetattr(0, TCSANOW, &t);
    }
    printf("BENCH-WAIT\n");
    fflush(stdout);
    size_t n = 0;
    while (n < sizeof line - 1) {
        ssize_t got = read(0, line + n, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = 0;
    return unpack_argv(line, args, argv);
}

static void load_modules(char *list)
{
    char path[256];
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        snprintf(path, sizeof path, "/lib/modules/%s.ko", name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) < 0)
            warn("load", name);
        if (fd >= 0)
            close(fd);
    }
}

static int find_disk(const char *serial, char *dev, size_t size)  /* /dev/vdX with that serial */
{
    DIR *dir = opendir("/sys/block");
    struct dirent *e;
    char path[300], text[64];
    int found = 0;
    while (dir && !found && (e = readdir(dir))) {
        if (strncmp(e->d_name, "vd", 2))
            continue;
        snprintf(path, sizeof path, "/sys/block/%s/serial", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC), n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            text[n] = 0;
            text[strcspn(text, "\n")] = 0;
            if (!strcmp(text, serial)) {
                snprintf(dev, size, "/dev/%s", e->d_name);
                found = 1;
            }
        }
    }
    if (dir)
        closedir(dir);
    if (!found) {
        errno = ENODEV;
        warn("find the disk", serial);
    }
    return found ? 0 : -1;
}

static void configure_network(const char *address)
{
    /* Only the net workloads ask for it: the rootfs's busybox ip, a few execs, is fine there. In a
       user's image (--image), the busybox of our layer: the image may have no ip, or no shell. */
    pid_t pid = fork();
    if (pid == 0) {
        if (chroot(ROOT) == 0 && chdir("/") == 0)
            execl(access("/.bench/busybox", X_OK) == 0 ? "/.bench/busybox" : "/bin/sh", "sh", "-c",
                  "ip link set lo up && { ! ip link show vec0 >/dev/null 2>&1 || ip link set vec0 name eth0; } && "
                  "ip addr add \"$1\" dev eth0 && ip link set eth0 up", "sh", address, (char *)NULL);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || status != 0) {
        errno = EIO;
        warn("configure eth0 with", address);
    }
}

static int run(char **argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, 0);
        if (chroot(ROOT) < 0 || chdir("/") < 0) {
            warn("chroot", ROOT);
            _exit(127);
        }
        execve(argv[0], argv, GUEST_ENV);
        warn("exec", argv[0]);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 127;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static long meminfo(const char *text, const char *key)
{
    const char *at = strstr(text, key);
    return at ? strtol(at + strlen(key), NULL, 10) : -1;
}

int main(void)
{
    static char cmdline[8192], args[8192], text[4096];
    char *argv[256], *modules = NULL, *scratch = NULL, *net = NULL, *root = NULL, dev[300];
    int argc = 0, poweroff = 0, wait = 0;

    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    int fd = open("/dev/console", O_RDWR);  /* the serial console, whatever the kernel gave us */
    if (fd >= 0) {
        dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    fd = open("/proc/cmdline", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, cmdline, sizeof cmdline - 1);
    cmdline[n > 0 ? n : 0] = 0;
    for (char *save = NULL, *arg = strtok_r(cmdline, " \n", &save); arg; arg = strtok_r(NULL, " \n", &save)) {
        if (!strncmp(arg, "bench.argv=", 11)) {
            argc = unpack_argv(arg + 11, args, argv);
        } else if (!strcmp(arg, "bench.wait")) {
            wait = 1;
        } else if (!strncmp(arg, "bench.modules=", 14)) {
            modules = arg + 14;
        } else if (!strncmp(arg, "bench.scratch=", 14)) {
            scratch = arg + 14;
        } else if (!strncmp(arg, "bench.net=", 10)) {
            net = arg + 10;
        } else if (!strncmp(arg, "bench.root=", 11)) {
            root = arg + 11;
        } else if (!strcmp(arg, "bench.poweroff")) {
            poweroff = 1;
        }
    }
    argv[argc] = NULL;
    if (modules)
        load_modules(modules);
    if (root)
        try_mount(root, ROOT, "ext4", MS_RDONLY, NULL);
    else if (find_disk("bench-root", dev, sizeof dev) == 0)
        try_mount(dev, ROOT, "ext4", MS_RDONLY, NULL);
    try_mount("proc", ROOT "/proc", "proc", 0, NULL);
    try_mount("sysfs", ROOT "/sys", "sysfs", MS_RDONLY, NULL);
    try_mount("devtmpfs", ROOT "/dev", "devtmpfs", 0, NULL);
    try_mount("tmpfs", ROOT "/tmp", "tmpfs", 0, "mode=1777");
    sethostname("bench-vm", 8);
    if (net)
        configure_network(net);
    if (scratch && try_mount("tmpfs", ROOT "/mnt", "tmpfs", 0, "size=64k") == 0) {  /* the root is read-only */
        mkdir(ROOT "/mnt/scratch", 0755);
        if (!strncmp(scratch, "/dev/", 5))  /* a device named outright: UML's ubdb has no serial */
            try_mount(scratch, ROOT "/mnt/scratch", "ext4", 0, NULL);
        else if (find_disk(scratch, dev, sizeof dev) == 0)
            try_mount(dev, ROOT "/mnt/scratch", "ext4", 0, NULL);
    }
    fflush(stdout);
    if (wait)
        argc = wait_for_argv(args, argv);
    int code = argc ? run(argv) : 127;
    fd = open("/proc/meminfo", O_RDONLY);
    n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
    text[n > 0 ? n : 0] = 0;
    printf("BENCH-MEM %ld %ld\nBENCH-EXIT %d\n", meminfo(text, "MemTotal:"), meminfo(text, "MemAvailable:"), code);
    fflush(stdout);
    /* Should no host be there any more, reset after a while (reboot=t and on_reboot=destroy end
       the domain, no ACPI needed). */
    sleep(30);
    reboot(poweroff ? RB_POWER_OFF : RB_AUTOBOOT);
    return 0;
}
