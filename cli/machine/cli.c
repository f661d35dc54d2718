#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"

int cli_fail(void)
{
	fprintf(stderr, "cove: %s\n", cove_last_error());
	return 1;
}

int cli_usage_error(const char *group, const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cove: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'cove %s %s --help')\n", group, cmd);
	return 1;
}

int cli_parse_opts(const char *group, int argc, char **argv, const char *usage,
		   const struct option *opts, const char *shortopts,
		   int (*on_opt)(int c, void *arg), void *arg)
{
	int c;

	optind = 0;	/* a full reset: shortopts' "+" is read again */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return -1;
		}
		if (c == '?' || c == ':') {
			cli_usage_error(group, argv[0], "unknown or incomplete option %s",
					argv[optind - 1]);
			return -2;
		}
		if (on_opt(c, arg))
			return -2;
	}
	return optind;
}
