/* `cove machine …` (alias `cove m …`): the machine commands' front end
 * (parses flags, prints, returns the exit status). */
#ifndef COVE_MACHINE_CMD_H
#define COVE_MACHINE_CMD_H

/* Run `cove machine ARGS`: argv[0] is "machine" or "m". Returns the
 * process exit status (0, or 1 after one error line on stderr; a command
 * run in a machine passes its own status through). Main thread. */
int machine_cmd_main(int argc, char **argv);

#endif
