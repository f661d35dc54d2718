/* `cove image …`: the image commands' front end (parses flags, prints,
 * returns the exit status). */
#ifndef COVE_IMAGE_CMD_H
#define COVE_IMAGE_CMD_H

/* Run `cove image ARGS`: argv[0] is "image". Returns the process exit
 * status (0, or 1 after one error line on stderr). Main thread. */
int image_cmd_main(int argc, char **argv);

#endif
