/* cove: the machine manager's front end. */
#include <stdio.h>
#include <string.h>

#include "image_cmd.h"
#include "machine_cmd.h"

static const char usage[] =
"Usage: cove [OPTIONS] COMMAND\n"
"\n"
"Persistent Linux machines from OCI images, on the cove microVM monitor\n"
"\n"
"Commands:\n"
"  image       Manage images\n"
"  machine     Manage machines (alias: m)\n"
"\n"
"Options:\n"
"  -h, --help      Show this help\n"
"  -v, --version   Print the version\n"
"\n"
"Run 'cove COMMAND --help' for more information on a command.\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 1;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-v") || !strcmp(argv[1], "--version")) {
		printf("cove version %s\n", COVE_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "image"))
		return image_cmd_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "machine") || !strcmp(argv[1], "m"))
		return machine_cmd_main(argc - 1, argv + 1);
	fprintf(stderr, "cove: unknown command \"%s\" (see 'cove --help')\n", argv[1]);
	return 1;
}
