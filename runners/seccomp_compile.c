/* bench-seccomp_compile POLICY OUT: a seccomp policy (runners/seccomp.py's policy_text) compiled
   with libseccomp into the BPF program that bench-container-init loads as its last step before
   exec. Compiled once when the container runner prepares, so that no launch parses a policy.
   A line: "default errno N" first, then "allow NAME [INDEX OP VALUE MASK]..." or
   "errno N NAME [...]"; OP is eq, ne or masked_eq ((arg & MASK) == VALUE). */
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what, const char *arg, int code)
{
    fprintf(stderr, "bench-seccomp_compile: %s %s: %s\n", what, arg, strerror(code));
    exit(1);
}

static int parse_rule(char *line, uint32_t *action, int *nr, struct scmp_arg_cmp *cmp, int max)
{
    char *word = strtok(line, " \n"), *name;
    if (!word)
        return -1;
    if (!strcmp(word, "errno"))
        *action = SCMP_ACT_ERRNO(atoi(strtok(NULL, " \n")));
    else
        *action = SCMP_ACT_ALLOW;
    name = strtok(NULL, " \n");
    *nr = seccomp_syscall_resolve_name(name);
    int n = 0;
    for (char *index; n < max && (index = strtok(NULL, " \n")); n++) {
        char *op = strtok(NULL, " \n");
        uint64_t value = strtoull(strtok(NULL, " \n"), NULL, 0), mask = strtoull(strtok(NULL, " \n"), NULL, 0);
        cmp[n] = (struct scmp_arg_cmp){.arg = atoi(index), .op = SCMP_CMP_EQ, .datum_a = value};
        if (!strcmp(op, "ne"))
            cmp[n].op = SCMP_CMP_NE;
        else if (!strcmp(op, "masked_eq"))
            cmp[n] = (struct scmp_arg_cmp){.arg = atoi(index), .op = SCMP_CMP_MASKED_EQ, .datum_a = mask,
                                           .datum_b = value};
    }
    return n;
}

int main(int argc, char **argv)
{
    char line[512];
    FILE *in = argc == 3 ? fopen(argv[1], "r") : NULL;
    if (!in)
        die("read policy", argc == 3 ? argv[1] : "(usage: POLICY OUT)", errno ? errno : EINVAL);
    if (!fgets(line, sizeof line, in) || strncmp(line, "default errno ", 14))
        die("policy must start with", "'default errno N'", EINVAL);
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(atoi(line + 14)));
    /* as Docker's profile on x86_64: the 32-bit and x32 system call tables too */
    if (!ctx || seccomp_arch_add(ctx, SCMP_ARCH_X86) < 0 || seccomp_arch_add(ctx, SCMP_ARCH_X32) < 0)
        die("set up", "libseccomp", ENOMEM);
    while (fgets(line, sizeof line, in)) {
        struct scmp_arg_cmp cmp[6];
        uint32_t action;
        int nr, n = parse_rule(line, &action, &nr, cmp, 6);
        /* a name this libseccomp or architecture does not know is skipped, as Docker skips it */
        if (n >= 0 && nr != __NR_SCMP_ERROR)
            seccomp_rule_add_array(ctx, action, nr, n, cmp);
    }
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644), rc;
    if (out < 0 || (rc = seccomp_export_bpf(ctx, out)) < 0)
        die("write", argv[2], out < 0 ? errno : -rc);
    close(out);
    seccomp_release(ctx);
    return 0;
}
