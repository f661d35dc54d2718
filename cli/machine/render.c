#include "render.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *const names[] = {
	[RENDER_TABLE] = "table",
	[RENDER_JSON] = "json",
	[RENDER_YAML] = "yaml",
	[RENDER_TOML] = "toml",
};

int render_parse(const char *s, unsigned allowed, enum render_format *out)
{
	char list[64] = "";
	unsigned left = __builtin_popcount(allowed);

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(allowed & (1u << i)))
			continue;
		if (!strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
		left--;
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 !list[0] ? "" : left ? ", " : " or ", names[i]);
	}
	return cove_fail(-EINVAL, "unknown format \"%s\": use %s", s, list);
}

/* A string as a JSON string: also a valid YAML double-quoted scalar and
 * TOML basic string (jansson escapes only what both accept). */
static void put_string(FILE *f, const char *s)
{
	json_t *j = json_string(s);
	char *text = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

	fputs(text ? text : "\"\"", f);
	free(text);
	json_decref(j);
}

static void put_scalar(FILE *f, json_t *v)
{
	char *text;

	if (json_is_string(v)) {
		put_string(f, json_string_value(v));
		return;
	}
	text = json_dumps(v, JSON_ENCODE_ANY);
	fputs(text ? text : "null", f);
	free(text);
}

static bool bare_key(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9') || *k == '_' || *k == '-'))
			return false;
	return true;
}

static void put_key(FILE *f, const char *k)
{
	if (bare_key(k))
		fputs(k, f);
	else
		put_string(f, k);
}

static bool is_container(json_t *v)
{
	return (json_is_object(v) && json_object_size(v)) || (json_is_array(v) && json_array_size(v));
}

static void yaml(FILE *f, json_t *v, int indent);

/* A YAML value after "key:" or "-": containers on the next lines. */
static void yaml_value(FILE *f, json_t *v, int indent, bool in_list)
{
	if (!is_container(v)) {
		fputc(' ', f);
		if (json_is_object(v))
			fputs("{}", f);
		else if (json_is_array(v))
			fputs("[]", f);
		else
			put_scalar(f, v);
		fputc('\n', f);
	} else if (in_list && json_is_object(v)) {
		/* "- key: value" with the rest of the mapping under it */
		fputc(' ', f);
		yaml(f, v, -(indent + 2));
	} else {
		fputc('\n', f);
		yaml(f, v, indent + 2);
	}
}

/* indent < 0: the first line is already indented (after "- "). */
static void yaml(FILE *f, json_t *v, int indent)
{
	bool first = true;
	int ind = indent < 0 ? -indent : indent;
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach(v, k, x) {
			fprintf(f, "%*s", first && indent < 0 ? 0 : ind, "");
			put_key(f, k);
			fputc(':', f);
			yaml_value(f, x, ind, false);
			first = false;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x) {
			fprintf(f, "%*s-", first && indent < 0 ? 0 : ind, "");
			yaml_value(f, x, ind, true);
			first = false;
		}
	} else {
		put_scalar(f, v);
		fputc('\n', f);
	}
}

static bool is_table_array(json_t *v)
{
	json_t *x;
	size_t i;

	if (!json_is_array(v) || !json_array_size(v))
		return false;
	json_array_foreach(v, i, x)
		if (!json_is_object(x))
			return false;
	return true;
}

/* An inline TOML value (arrays of scalars, inline tables elsewhere). */
static void toml_inline(FILE *f, json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_array(v)) {
		fputc('[', f);
		json_array_foreach(v, i, x) {
			fputs(i ? ", " : "", f);
			toml_inline(f, x);
		}
		fputc(']', f);
	} else if (json_is_object(v)) {
		bool first = true;

		fputc('{', f);
		json_object_foreach(v, k, x) {
			if (json_is_null(x))
				continue;
			fputs(first ? " " : ", ", f);
			put_key(f, k);
			fputs(" = ", f);
			toml_inline(f, x);
			first = false;
		}
		fputs(first ? "}" : " }", f);
	} else {
		put_scalar(f, v);
	}
}

/* The table at path (dotted, already quoted as needed): its plain keys,
 * then its sub-tables and arrays of tables. */
static void toml_table(FILE *f, json_t *v, const char *path)
{
	const char *k;
	json_t *x;
	size_t i;

	json_object_foreach(v, k, x) {
		if (json_is_null(x) || (json_is_object(x) && json_object_size(x)) || is_table_array(x))
			continue;
		put_key(f, k);
		fputs(" = ", f);
		toml_inline(f, x);
		fputc('\n', f);
	}
	json_object_foreach(v, k, x) {
		char sub[1024], *q = NULL;
		json_t *y;

		if (!(json_is_object(x) && json_object_size(x)) && !is_table_array(x))
			continue;
		if (!bare_key(k)) {
			json_t *s = json_string(k);

			q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
			json_decref(s);
		}
		snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", q ? q : k);
		free(q);
		if (json_is_object(x)) {
			fprintf(f, "\n[%s]\n", sub);
			toml_table(f, x, sub);
		} else {
			json_array_foreach(x, i, y) {
				fprintf(f, "\n[[%s]]\n", sub);
				toml_table(f, y, sub);
			}
		}
	}
}

void render_print(FILE *f, json_t *v, enum render_format fmt)
{
	switch (fmt) {
	case RENDER_YAML:
		yaml(f, v, 0);
		break;
	case RENDER_TOML:
		toml_table(f, v, "");
		break;
	default:
		json_dumpf(v, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
		fputc('\n', f);
		break;
	}
}
