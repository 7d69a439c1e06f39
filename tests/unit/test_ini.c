/* Unit tests for the INI reader (config/ini.c, ini.h, docs/config.md
 * "Syntax"): what it accepts, and that each refusal names the file and
 * the line. Each test writes a temp file (mkstemp, removed afterwards). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bypax/errors.h"
#include "ini.h"

struct parsed {
	char path[64];
	char err[512];
	int rc;
	struct bpx_ini *ini;
};

static void parse_text(const char *text, struct parsed *p)
{
	snprintf(p->path, sizeof(p->path), "/tmp/bypax-test-ini-XXXXXX");
	int fd = mkstemp(p->path);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	memset(p->err, 0, sizeof(p->err));
	p->rc = bpx_ini_load(p->path, &p->ini, p->err, sizeof(p->err));
	assert_int_equal(unlink(p->path), 0);
	if (p->rc != 0)
		assert_null(p->ini);
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* A refusal: rc, "PATH:LINE: ", and a phrase of the reason. */
static void assert_refused(const char *text, unsigned line, const char *why)
{
	struct parsed p;
	parse_text(text, &p);
	print_message("%s\n", p.err);
	if (p.rc != -BPX_ECONFIG)
		fail_msg("rc %d for \"%s\", want %d", p.rc, text, -BPX_ECONFIG);
	char where[96];
	snprintf(where, sizeof(where), "%s:%u: ", p.path, line);
	assert_contains(p.err, where);
	assert_contains(p.err, why);
}

static void test_syntax_accepted(void **state)
{
	(void)state;
	struct parsed p;
	parse_text("; a comment\n"
		   "# another comment\n"
		   "   ; indented comment\n"
		   "\n"
		   "[cluster]   ; after a section\n"
		   "id = 7\n"
		   "\twindow\t=\t64  \r\n"
		   "sm_args = capacity=100 ; a=b after a value\n"
		   "empty =\n"
		   "hash = 64 # not a comment here\n"
		   "[ member0 ]\n"
		   "ip=10.0.0.1\n",
		   &p);
	if (p.rc != 0)
		fail_msg("refused: %s", p.err);
	const struct bpx_ini *ini = p.ini;
	assert_true(bpx_ini_has_section(ini, "cluster"));
	assert_true(bpx_ini_has_section(ini, "member0"));
	assert_false(bpx_ini_has_section(ini, "member1"));
	assert_string_equal(bpx_ini_get(ini, "cluster", "id"), "7");
	assert_string_equal(bpx_ini_get(ini, "cluster", "window"), "64");
	assert_string_equal(bpx_ini_get(ini, "cluster", "sm_args"),
			    "capacity=100");
	assert_string_equal(bpx_ini_get(ini, "cluster", "empty"), "");
	assert_string_equal(bpx_ini_get(ini, "cluster", "hash"),
			    "64 # not a comment here");
	assert_string_equal(bpx_ini_get(ini, "member0", "ip"), "10.0.0.1");
	assert_null(bpx_ini_get(ini, "cluster", "ip"));
	assert_null(bpx_ini_get(ini, "member1", "ip"));
	assert_int_equal(bpx_ini_line(ini, "cluster", NULL), 5);
	assert_int_equal(bpx_ini_line(ini, "cluster", "window"), 7);
	assert_int_equal(bpx_ini_line(ini, "member0", "ip"), 12);
	assert_int_equal(bpx_ini_line(ini, "member0", "mac"), 0);
	bpx_ini_free(p.ini);
}

/* An empty file, and one without a final newline, load. */
static void test_edges_accepted(void **state)
{
	(void)state;
	struct parsed p;
	parse_text("", &p);
	assert_int_equal(p.rc, 0);
	assert_false(bpx_ini_has_section(p.ini, "cluster"));
	bpx_ini_free(p.ini);
	parse_text("[a]\nk = v", &p);
	assert_int_equal(p.rc, 0);
	assert_string_equal(bpx_ini_get(p.ini, "a", "k"), "v");
	bpx_ini_free(p.ini);
	bpx_ini_free(NULL);
}

static void test_duplicates_refused(void **state)
{
	(void)state;
	assert_refused("[cluster]\nid = 1\n\nid = 2\n", 4,
		       "[cluster] id appears twice (first at line 2)");
	assert_refused("[member0]\nip = 1\n[member1]\n[member0]\n", 4,
		       "[member0] appears twice (first at line 1)");
	/* The same key in two sections is two keys. */
	struct parsed p;
	parse_text("[a]\nk = 1\n[b]\nk = 2\n", &p);
	assert_int_equal(p.rc, 0);
	assert_string_equal(bpx_ini_get(p.ini, "a", "k"), "1");
	assert_string_equal(bpx_ini_get(p.ini, "b", "k"), "2");
	bpx_ini_free(p.ini);
}

static void test_sections_refused(void **state)
{
	(void)state;
	assert_refused("[cluster\nid = 1\n", 1,
		       "'[cluster' has no closing ']'");
	assert_refused("; c\n[cluster] id = 1\n", 2, "text after ']'");
	assert_refused("[]\n", 1, "empty section name");
	char text[256];
	snprintf(text, sizeof(text), "[%064d]\n", 0);
	assert_refused(text, 1, "longer than 63 characters");
	char many[BPX_INI_SECTIONS_MAX * 8 + 16] = "";
	for (int i = 0; i <= BPX_INI_SECTIONS_MAX; i++) {
		char s[16];
		snprintf(s, sizeof(s), "[s%d]\n", i);
		strcat(many, s);
	}
	assert_refused(many, BPX_INI_SECTIONS_MAX + 1, "more than 64 sections");
}

static void test_keys_refused(void **state)
{
	(void)state;
	assert_refused("id = 1\n[cluster]\n", 1,
		       "key 'id' is outside any section");
	assert_refused("[cluster]\nid 1\n", 2,
		       "'id 1' is neither [section] nor key = value");
	assert_refused("[cluster]\n= 1\n", 2, "has no key");
	char text[1024];
	snprintf(text, sizeof(text), "[c]\n%064d = 1\n", 0);
	assert_refused(text, 2, "longer than 63 characters");
	snprintf(text, sizeof(text), "[c]\nk = %0256d\n", 0);
	assert_refused(text, 2, "value is longer than 255 characters");
	snprintf(text, sizeof(text), "[c]\nk = %0255d\n", 0);
	struct parsed p;
	parse_text(text, &p);
	assert_int_equal(p.rc, 0);
	assert_int_equal(strlen(bpx_ini_get(p.ini, "c", "k")), 255);
	bpx_ini_free(p.ini);
}

static void test_long_lines(void **state)
{
	(void)state;
	/* 1022 characters and a newline: the longest line (a comment). */
	char text[2100];
	memset(text, 0, sizeof(text));
	strcpy(text, "[c]\n;");
	memset(text + 5, 'x', 1021);
	strcat(text, "\nk = v\n");
	struct parsed p;
	parse_text(text, &p);
	if (p.rc != 0)
		fail_msg("refused: %s", p.err);
	assert_string_equal(bpx_ini_get(p.ini, "c", "k"), "v");
	bpx_ini_free(p.ini);
	/* One more is refused, naming its line. */
	memset(text, 0, sizeof(text));
	strcpy(text, "[c]\nk = v\n;");
	memset(text + 11, 'x', 1022);
	strcat(text, "\n");
	assert_refused(text, 3, "line is longer than 1022 characters");
}

static void test_too_many_keys(void **state)
{
	(void)state;
	size_t cap = 16 + (BPX_INI_ENTRIES_MAX + 1) * 16;
	char *text = malloc(cap);
	assert_non_null(text);
	strcpy(text, "[c]\n");
	for (int i = 0; i <= BPX_INI_ENTRIES_MAX; i++) {
		char kv[24];
		snprintf(kv, sizeof(kv), "k%d = 1\n", i);
		strcat(text, kv);
	}
	assert_refused(text, BPX_INI_ENTRIES_MAX + 2, "more than 512 keys");
	free(text);
}

static void test_missing_file(void **state)
{
	(void)state;
	char err[256];
	struct bpx_ini *ini = (struct bpx_ini *)&err;
	const char *path = "/tmp/bypax-test-ini-does-not-exist.ini";
	assert_int_equal(bpx_ini_load(path, &ini, err, sizeof(err)),
			 -BPX_ENOENT);
	assert_null(ini);
	assert_contains(err, path);
	assert_contains(err, "cannot open");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax_accepted),
		cmocka_unit_test(test_edges_accepted),
		cmocka_unit_test(test_duplicates_refused),
		cmocka_unit_test(test_sections_refused),
		cmocka_unit_test(test_keys_refused),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_too_many_keys),
		cmocka_unit_test(test_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
