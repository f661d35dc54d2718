#include "human.h"

#include <stdio.h>
#include <time.h>

const char *human_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB", "PB" };
	double v = bytes;
	unsigned u = 0;

	while (v >= 1000 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%lluB", (unsigned long long)bytes);
	else
		snprintf(buf, size, "%.3g%s", v, units[u]);
	return buf;
}

const char *human_ago(int64_t t, char *buf, size_t size)
{
	static const struct { int64_t secs; const char *unit; } units[] = {
		{ 365 * 86400, "year" }, { 30 * 86400, "month" }, { 7 * 86400, "week" },
		{ 86400, "day" }, { 3600, "hour" }, { 60, "minute" }, { 1, "second" },
	};
	int64_t d = time(NULL) - t;

	snprintf(buf, size, "Less than a second ago");
	for (size_t i = 0; d >= 1 && i < sizeof(units) / sizeof(units[0]); i++) {
		if (d >= units[i].secs) {
			int64_t n = d / units[i].secs;

			snprintf(buf, size, "%lld %s%s ago", (long long)n, units[i].unit,
				 n == 1 ? "" : "s");
			break;
		}
	}
	return buf;
}
