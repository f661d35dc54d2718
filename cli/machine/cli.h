/* What the command front ends share: option parsing and the one-line
 * errors of `cove GROUP CMD`. Main thread. */
#ifndef COVE_CLI_H
#define COVE_CLI_H

#include <getopt.h>

/* Print "cove: " and cove_last_error() on stderr; returns 1 (the exit
 * status). */
int cli_fail(void);

/* Print "cove: MESSAGE (see 'cove GROUP CMD --help')" on stderr; returns 1. */
int cli_usage_error(const char *group, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* getopt_long over a subcommand's arguments (argv[0] is the subcommand;
 * shortopts may start with "+" to stop at the first operand), calling
 * on_opt(c, arg) for each option: it returns 0, or 1 after printing a
 * usage error. -h/--help prints usage on stdout. Returns the first
 * operand's index, -1 after help (exit 0) or -2 after a usage error
 * (exit 1). */
int cli_parse_opts(const char *group, int argc, char **argv, const char *usage,
		   const struct option *opts, const char *shortopts,
		   int (*on_opt)(int c, void *arg), void *arg);

#endif
