/* agent-run: drive a machine's exec agent from the host in tests, through
 * agent_client (what `cove machine` uses).
 *
 *   agent-run [-T MS] SOCK exec [-t] [-i] [-u USER | -U UID:GID] [-w DIR]
 *             [-e K=V]... [-- CMD ARG...]     run CMD (no CMD: login shell);
 *                                             exits with its status
 *   agent-run [-T MS] SOCK poweroff
 *   agent-run [-T MS] SOCK info               KEY=VALUE lines
 *
 * SOCK is cove-vmm's --vsock uds path; -T bounds the wait for the agent
 * (default 120000 ms). Errors: one line on stderr, exit 255.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_client.h"

static void __attribute__((noreturn)) die(const char *what, int err)
{
	fprintf(stderr, "agent-run: %s: %s\n", what, strerror(-err));
	exit(255);
}

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr, "usage: agent-run [-T MS] SOCK exec|poweroff|info [...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct agent_exec x = { 0 };
	char *env[256];
	int nenv = 0, timeout = 120000, fd, err, status, c;
	const char *sock, *cmd;

	while ((c = getopt(argc, argv, "+T:")) != -1) {
		if (c != 'T')
			usage();
		timeout = atoi(optarg);
	}
	if (argc - optind < 2)
		usage();
	sock = argv[optind];
	cmd = argv[optind + 1];
	optind += 2;
	if (!strcmp(cmd, "exec")) {
		while ((c = getopt(argc, argv, "+tiu:U:w:e:")) != -1) {
			switch (c) {
			case 't': x.tty = true; break;
			case 'i': x.stdin = true; break;
			case 'u': x.user = optarg; break;
			case 'U':
				if (sscanf(optarg, "%u:%u", &x.uid, &x.gid) != 2)
					usage();
				break;
			case 'w': x.cwd = optarg; break;
			case 'e':
				if (nenv == 255)
					usage();
				env[nenv++] = optarg;
				break;
			default: usage();
			}
		}
		env[nenv] = NULL;
		x.env = env;
		x.argv = optind < argc ? argv + optind : NULL;
	} else if (strcmp(cmd, "poweroff") && strcmp(cmd, "info")) {
		usage();
	}

	fd = agent_connect(sock, timeout);
	if (fd < 0)
		die("connect", fd);
	if (!strcmp(cmd, "poweroff")) {
		err = agent_poweroff(fd);
		if (err)
			die("poweroff", err);
		return 0;
	}
	if (!strcmp(cmd, "info")) {
		struct agent_info in;

		err = agent_info(fd, &in);
		if (err)
			die("info", err);
		printf("ipv4=%s\nmem_total_kib=%llu\nmem_available_kib=%llu\n"
		       "disk_total_kib=%llu\ndisk_used_kib=%llu\nload=%.2f,%.2f,%.2f\n",
		       in.ipv4, (unsigned long long)in.mem_total_kib,
		       (unsigned long long)in.mem_available_kib,
		       (unsigned long long)in.disk_total_kib, (unsigned long long)in.disk_used_kib,
		       in.load[0], in.load[1], in.load[2]);
		return 0;
	}
	err = agent_exec(fd, &x, STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, &status);
	if (err)
		die("exec", err);
	return status;
}
