/* Machine-readable output: one JSON value printed as JSON, YAML or TOML,
 * for `--format` of ls, inspect and stats. */
#ifndef COVE_RENDER_H
#define COVE_RENDER_H

#include <stdio.h>

#include <jansson.h>

enum render_format {
	RENDER_TABLE,	/* the command's own table; not rendered here */
	RENDER_JSON,
	RENDER_YAML,
	RENDER_TOML,
};

/* Parse a --format value; allowed is a mask of (1 << RENDER_*). 0, or
 * -EINVAL with cove_fail's message naming the formats allowed. Pure. */
int render_parse(const char *s, unsigned allowed, enum render_format *out);

/* Print v to f in format fmt (JSON, YAML or TOML), ending with a newline.
 * For TOML, v must be an object (tables and arrays of tables for nested
 * objects; null members are left out, as TOML has no null). */
void render_print(FILE *f, json_t *v, enum render_format fmt);

#endif
