#include "image_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "human.h"
#include "image.h"
#include "libcove.h"
#include "log.h"
#include "oci_import.h"
#include "oci_ref.h"
#include "registry.h"
#include "store.h"

static const char usage_image[] =
"Usage: cove image COMMAND\n"
"\n"
"Manage images\n"
"\n"
"Commands:\n"
"  pull        Download an image from a registry\n"
"  import      Copy an image from an OCI layout or archive\n"
"  ls          List images\n"
"  rm          Remove one or more images\n"
"  unpack      Build an ext4 root disk from an image\n"
"\n"
"Images live in $XDG_DATA_HOME/cove/images (default ~/.local/share/cove/images).\n"
"\n"
"Run 'cove image COMMAND --help' for more information on a command.\n";

static const char usage_pull[] =
"Usage: cove image pull [OPTIONS] NAME[:TAG|@DIGEST]\n"
"\n"
"Download an image from a registry\n"
"\n"
"  debian:12 means docker.io/library/debian:12; HOST[:PORT]/REPO[:TAG] names\n"
"  another registry over HTTPS; registries on loopback (localhost,\n"
"  127.0.0.0/8, [::1]) and those in $COVE_INSECURE_REGISTRIES (comma-separated\n"
"  HOST[:PORT]) may also answer in plain HTTP when they do not speak TLS.\n"
"  $SSL_CERT_FILE names a CA bundle. Manifest lists pick linux/amd64; every\n"
"  blob is checked against its digest.\n"
"\n"
"Options:\n"
"  -q, --quiet   Print only the image's name\n"
"  -h, --help    Show this help\n";

static const char usage_import[] =
"Usage: cove image import [OPTIONS] SOURCE [NAME[:TAG]]\n"
"\n"
"Copy an image from an OCI layout or archive\n"
"\n"
"  SOURCE is oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE.\n"
"  Without NAME the image is called localhost/BASENAME:TAG (or, from a\n"
"  docker archive, by its first tag).\n"
"\n"
"Options:\n"
"  -q, --quiet   Print only the image's name\n"
"  -h, --help    Show this help\n";

static const char usage_ls[] =
"Usage: cove image ls [OPTIONS]\n"
"\n"
"List images\n"
"\n"
"Aliases:\n"
"  cove image ls, cove image list\n"
"\n"
"Options:\n"
"      --format FORMAT   table (default) or json\n"
"  -q, --quiet           Print only image digests (short)\n"
"  -h, --help            Show this help\n";

static const char usage_rm[] =
"Usage: cove image rm IMAGE [IMAGE...]\n"
"\n"
"Remove one or more images, by name or digest prefix, and the blobs that no\n"
"other image uses\n"
"\n"
"Aliases:\n"
"  cove image rm, cove image remove\n"
"\n"
"Options:\n"
"  -h, --help    Show this help\n";

static const char usage_unpack[] =
"Usage: cove image unpack [OPTIONS] IMAGE FILE --size SIZE\n"
"\n"
"Build an ext4 root disk from an image's layers\n"
"\n"
"  FILE must not exist; it becomes a sparse file of SIZE bytes holding an\n"
"  ext4 filesystem with the image's files (owners, modes, xattrs, links,\n"
"  devices; whiteouts applied). No root privileges needed.\n"
"\n"
"Options:\n"
"  -s, --size SIZE   Disk size: MiB as a bare number, or 512M, 8G (required)\n"
"  -q, --quiet       Print nothing on success\n"
"  -h, --help        Show this help\n";

struct common {
	bool quiet;
	const char *format;
	const char *size;
};

static int common_opt(int c, void *arg)
{
	struct common *o = arg;

	if (c == 'q')
		o->quiet = true;
	else if (c == 'f')
		o->format = optarg;
	else if (c == 's')
		o->size = optarg;
	return 0;
}

static const struct option opts_quiet[] = {
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* pull or import: the image into the store, its name on stdout. */
static int fetch(const char *what, const char *as, bool quiet)
{
	char digest[DIGEST_LEN + 1], name[OCI_REF_MAX];
	struct store s;
	int err;

	if (store_open(&s, STORE_EXCLUSIVE))
		return cli_fail();
	err = image_fetch(&s, what, as, quiet ? NULL : stdout, name, digest);
	store_close(&s);
	if (err)
		return cli_fail();
	if (!quiet)
		printf("Digest: %s\n", digest);
	printf("%s\n", name);
	return 0;
}

static int cmd_pull(int argc, char **argv)
{
	struct common o = { 0 };
	struct oci_ref ref;
	int i = cli_parse_opts("image", argc, argv, usage_pull, opts_quiet, "qh", common_opt, &o);

	if (i < 0)
		return i == -1 ? 0 : 1;
	if (argc - i != 1)
		return cli_usage_error("image", "pull", "pull needs exactly one image name");
	if (oci_ref_parse(argv[i], &ref))
		return cli_fail();
	return fetch(argv[i], NULL, o.quiet);
}

static int cmd_import(int argc, char **argv)
{
	struct common o = { 0 };
	struct oci_ref ref;
	int i = cli_parse_opts("image", argc, argv, usage_import, opts_quiet, "qh", common_opt, &o);

	if (i < 0)
		return i == -1 ? 0 : 1;
	if (argc - i < 1 || argc - i > 2)
		return cli_usage_error("image", "import", "import needs a SOURCE and at most a NAME");
	if (argc - i == 2 && oci_ref_parse(argv[i + 1], &ref))
		return cli_fail();
	if (!image_is_local(argv[i]))
		return cli_usage_error("image", "import", "unknown source \"%s\": use oci:DIR[:TAG], "
				       "oci-archive:FILE[:TAG] or docker-archive:FILE", argv[i]);
	return fetch(argv[i], argc - i == 2 ? argv[i + 1] : NULL, o.quiet);
}

/* Split "host/repo:tag" into its repository and tag; a name pulled by
 * digest ("host/repo@sha256:…") has tag "<none>". */
static void split_name(const char *name, char *repo, size_t size, const char **tag)
{
	const char *at = strchr(name, '@');
	const char *colon = at ? NULL : strrchr(name, ':'), *slash = strrchr(name, '/');

	if (at) {
		snprintf(repo, size, "%.*s", (int)(at - name), name);
		*tag = "<none>";
	} else if (colon && (!slash || colon > slash)) {
		snprintf(repo, size, "%.*s", (int)(colon - name), name);
		*tag = colon + 1;
	} else {
		snprintf(repo, size, "%s", name);
		*tag = "<none>";
	}
}

static const struct option opts_ls[] = {
	{ "format", required_argument, NULL, 'f' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int cmd_ls(int argc, char **argv)
{
	struct common o = { .format = "table" };
	struct store_image *imgs;
	struct store s;
	size_t n;
	int i = cli_parse_opts("image", argc, argv, usage_ls, opts_ls, "qh", common_opt, &o);

	if (i < 0)
		return i == -1 ? 0 : 1;
	if (i != argc)
		return cli_usage_error("image", "ls", "ls takes no arguments, got \"%s\"", argv[i]);
	if (strcmp(o.format, "table") && strcmp(o.format, "json"))
		return cli_usage_error("image", "ls", "unknown format \"%s\": use table or json", o.format);
	if (store_open(&s, STORE_NOLOCK) || store_images(&s, &imgs, &n))
		return cli_fail();
	if (o.quiet) {
		for (size_t k = 0; k < n; k++)
			printf("%.12s\n", imgs[k].digest + 7);
	} else if (!strcmp(o.format, "json")) {
		json_t *list = json_array();

		for (size_t k = 0; k < n; k++) {
			char repo[OCI_REF_MAX], when[32];
			const char *tag;
			time_t t = imgs[k].created;

			split_name(imgs[k].name, repo, sizeof(repo), &tag);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
			json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s}",
				"name", imgs[k].name, "repository", repo, "tag", tag,
				"digest", imgs[k].digest, "config", imgs[k].config,
				"size", (json_int_t)imgs[k].size, "created", when));
		}
		json_dumpf(list, stdout, JSON_INDENT(2));
		printf("\n");
		json_decref(list);
	} else {
		printf("%-44s %-12s %-14s %-16s %s\n", "REPOSITORY", "TAG", "DIGEST", "CREATED",
		       "SIZE");
		for (size_t k = 0; k < n; k++) {
			char repo[OCI_REF_MAX], when[48], hs[32];
			const char *tag;

			split_name(imgs[k].name, repo, sizeof(repo), &tag);
			human_ago(imgs[k].created, when, sizeof(when));
			printf("%-44s %-12s %-14.12s %-16s %s\n", repo, tag, imgs[k].digest + 7, when,
			       human_size(imgs[k].size, hs, sizeof(hs)));
		}
	}
	free(imgs);
	return 0;
}

static const struct option opts_help[] = {
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int cmd_rm(int argc, char **argv)
{
	struct common o = { 0 };
	struct store_image im;
	struct store s;
	int rc = 0, i = cli_parse_opts("image", argc, argv, usage_rm, opts_help, "h", common_opt, &o);

	if (i < 0)
		return i == -1 ? 0 : 1;
	if (i == argc)
		return cli_usage_error("image", "rm", "rm needs at least one image");
	if (store_open(&s, STORE_EXCLUSIVE))
		return cli_fail();
	for (; i < argc; i++) {
		if (store_image_find(&s, argv[i], &im) || store_image_remove(&s, im.name)) {
			rc = cli_fail();
			continue;
		}
		printf("Untagged: %s\nDeleted: %s\n", im.name, im.digest);
	}
	store_close(&s);
	return rc;
}

static const struct option opts_unpack[] = {
	{ "size", required_argument, NULL, 's' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int cmd_unpack(int argc, char **argv)
{
	struct common o = { 0 };
	struct store_image im;
	struct timespec t0, t1;
	char hs[32];
	struct store s;
	uint64_t size;
	int err, i = cli_parse_opts("image", argc, argv, usage_unpack, opts_unpack, "qhs:", common_opt, &o);

	if (i < 0)
		return i == -1 ? 0 : 1;
	if (argc - i != 2)
		return cli_usage_error("image", "unpack", "unpack needs an IMAGE and a FILE");
	if (!o.size)
		return cli_usage_error("image", "unpack", "unpack needs --size");
	err = cove_parse_size(o.size, &size);
	if (err)
		return cli_usage_error("image", "unpack", "bad size \"%s\": use e.g. 512M or 8G", o.size);
	if (store_open(&s, STORE_SHARED))
		return cli_fail();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = image_unpack(&s, argv[i], argv[i + 1], size, o.quiet ? NULL : stdout, &im);
	store_close(&s);
	if (err)
		return cli_fail();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!o.quiet)
		printf("%s: ext4, %s, from %s in %.2fs\n", argv[i + 1], human_size(size, hs, sizeof(hs)),
		       im.name, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}

int image_cmd_main(int argc, char **argv)
{
	static const struct {
		const char *name, *alias;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "pull", NULL, cmd_pull },
		{ "import", NULL, cmd_import },
		{ "ls", "list", cmd_ls },
		{ "rm", "remove", cmd_rm },
		{ "unpack", NULL, cmd_unpack },
	};

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage_image, argc < 2 ? stderr : stdout);
		return argc < 2;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name) || (cmds[i].alias && !strcmp(argv[1], cmds[i].alias)))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "cove: unknown command \"image %s\" (see 'cove image --help')\n", argv[1]);
	return 1;
}
