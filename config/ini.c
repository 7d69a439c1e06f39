/* The INI reader of ini.h: plain C, no DPDK. Errors name the file and the
 * line, so that an operator can go straight to it. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/errors.h"
#include "ini.h"

struct ini_section {
	char name[BPX_INI_NAME_BYTES_MAX];
	uint32_t line;
};

struct ini_entry {
	char key[BPX_INI_NAME_BYTES_MAX];
	char value[BPX_INI_VALUE_BYTES_MAX];
	uint32_t line;
	uint16_t section; /* index into sections */
};

struct bpx_ini {
	uint16_t section_count;
	uint32_t entry_count;
	struct ini_section sections[BPX_INI_SECTIONS_MAX];
	struct ini_entry entries[BPX_INI_ENTRIES_MAX];
};

struct ini_parser {
	struct bpx_ini *ini;
	const char *path;
	uint32_t line;
	char *err;
	size_t err_len;
};

static int parse_fail(struct ini_parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int parse_fail(struct ini_parser *p, const char *fmt, ...)
{
	char why[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->err_len, "%s:%u: %s", p->path, p->line, why);
	return -BPX_ECONFIG;
}

static int find_section(const struct bpx_ini *ini, const char *name)
{
	for (uint16_t i = 0; i < ini->section_count; i++)
		if (strcmp(ini->sections[i].name, name) == 0)
			return i;
	return -1;
}

static const struct ini_entry *find_entry(const struct bpx_ini *ini,
					  const char *section, const char *key)
{
	int s = find_section(ini, section);
	if (s < 0)
		return NULL;
	for (uint32_t i = 0; i < ini->entry_count; i++) {
		const struct ini_entry *e = &ini->entries[i];
		if (e->section == s && strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

/* s without leading and trailing blanks, in place. */
static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
			 s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

static int add_section(struct ini_parser *p, char *text)
{
	char *close = strchr(text, ']');
	if (close == NULL)
		return parse_fail(p, "'%s' has no closing ']'", text);
	if (*trim(close + 1) != '\0')
		return parse_fail(p, "'%s' has text after ']'", text);
	*close = '\0';
	char *name = trim(text + 1);
	if (*name == '\0')
		return parse_fail(p, "empty section name '[]'");
	if (strlen(name) >= BPX_INI_NAME_BYTES_MAX)
		return parse_fail(p,
				  "section name '%s' is longer than %d "
				  "characters",
				  name, BPX_INI_NAME_BYTES_MAX - 1);
	struct bpx_ini *ini = p->ini;
	int dup = find_section(ini, name);
	if (dup >= 0)
		return parse_fail(p, "[%s] appears twice (first at line %u)",
				  name, ini->sections[dup].line);
	if (ini->section_count == BPX_INI_SECTIONS_MAX)
		return parse_fail(p, "more than %d sections",
				  BPX_INI_SECTIONS_MAX);
	struct ini_section *s = &ini->sections[ini->section_count++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->line = p->line;
	return 0;
}

static int check_entry(struct ini_parser *p, const char *key, const char *value)
{
	struct bpx_ini *ini = p->ini;
	const char *section = ini->sections[ini->section_count - 1].name;
	if (*key == '\0')
		return parse_fail(p, "[%s] '= %s' has no key", section, value);
	if (strlen(key) >= BPX_INI_NAME_BYTES_MAX)
		return parse_fail(p,
				  "[%s] key '%s' is longer than %d characters",
				  section, key, BPX_INI_NAME_BYTES_MAX - 1);
	if (strlen(value) >= BPX_INI_VALUE_BYTES_MAX)
		return parse_fail(p,
				  "[%s] %s: the value is longer than %d "
				  "characters",
				  section, key, BPX_INI_VALUE_BYTES_MAX - 1);
	const struct ini_entry *dup = find_entry(ini, section, key);
	if (dup != NULL)
		return parse_fail(p, "[%s] %s appears twice (first at line %u)",
				  section, key, dup->line);
	if (ini->entry_count == BPX_INI_ENTRIES_MAX)
		return parse_fail(p, "more than %d keys", BPX_INI_ENTRIES_MAX);
	return 0;
}

static int add_entry(struct ini_parser *p, char *text)
{
	char *eq = strchr(text, '=');
	if (eq == NULL)
		return parse_fail(
			p, "'%s' is neither [section] nor key = value", text);
	*eq = '\0';
	char *key = trim(text), *value = trim(eq + 1);
	struct bpx_ini *ini = p->ini;
	if (ini->section_count == 0)
		return parse_fail(p,
				  "key '%s' is outside any section: put it "
				  "under a [section]",
				  key);
	int err = check_entry(p, key, value);
	if (err)
		return err;
	struct ini_entry *e = &ini->entries[ini->entry_count++];
	snprintf(e->key, sizeof(e->key), "%s", key);
	snprintf(e->value, sizeof(e->value), "%s", value);
	e->line = p->line;
	e->section = (uint16_t)(ini->section_count - 1);
	return 0;
}

/* One line, without its newline. */
static int parse_line(struct ini_parser *p, char *line)
{
	char *text = trim(line);
	/* '#' only at the start: in a value it is text (docs/config.md). */
	if (*text == '#')
		return 0;
	char *semicolon = strchr(text, ';');
	if (semicolon != NULL)
		*semicolon = '\0';
	text = trim(text);
	if (*text == '\0')
		return 0;
	if (*text == '[')
		return add_section(p, text);
	return add_entry(p, text);
}

static int parse_stream(struct ini_parser *p, FILE *f)
{
	char line[BPX_INI_LINE_BYTES_MAX];
	while (fgets(line, sizeof(line), f) != NULL) {
		p->line++;
		size_t n = strlen(line);
		if (n == sizeof(line) - 1 && line[n - 1] != '\n' && !feof(f))
			return parse_fail(p,
					  "line is longer than %d characters",
					  BPX_INI_LINE_BYTES_MAX - 2);
		int err = parse_line(p, line);
		if (err)
			return err;
	}
	if (ferror(f))
		return parse_fail(p, "read error: %s", strerror(errno));
	return 0;
}

int bpx_ini_load(const char *path, struct bpx_ini **out, char *err,
		 size_t err_len)
{
	assert(path != NULL && out != NULL && err != NULL);
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, err_len, "%s: cannot open: %s", path,
			 strerror(errno));
		return -BPX_ENOENT;
	}
	struct ini_parser p = { .path = path, .err = err, .err_len = err_len };
	p.ini = calloc(1, sizeof(*p.ini));
	if (p.ini == NULL) {
		fclose(f);
		snprintf(err, err_len, "%s: out of memory", path);
		return -BPX_ENOMEM;
	}
	int rc = parse_stream(&p, f);
	fclose(f);
	if (rc != 0) {
		free(p.ini);
		return rc;
	}
	*out = p.ini;
	return 0;
}

void bpx_ini_free(struct bpx_ini *ini)
{
	free(ini);
}

bool bpx_ini_has_section(const struct bpx_ini *ini, const char *section)
{
	assert(ini != NULL && section != NULL);
	return find_section(ini, section) >= 0;
}

const char *bpx_ini_get(const struct bpx_ini *ini, const char *section,
			const char *key)
{
	assert(ini != NULL && section != NULL && key != NULL);
	const struct ini_entry *e = find_entry(ini, section, key);
	return e != NULL ? e->value : NULL;
}

uint32_t bpx_ini_line(const struct bpx_ini *ini, const char *section,
		      const char *key)
{
	assert(ini != NULL && section != NULL);
	if (key == NULL) {
		int s = find_section(ini, section);
		return s >= 0 ? ini->sections[s].line : 0;
	}
	const struct ini_entry *e = find_entry(ini, section, key);
	return e != NULL ? e->line : 0;
}
