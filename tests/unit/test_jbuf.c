/*
 * tests/unit/test_jbuf.c — the API room's JSON string writer (broker/api/jbuf.c): escapes, control
 * characters, "</" inside HTML, valid UTF-8 passed through, every kind of invalid UTF-8 replaced by
 * U+FFFD, embedded NULs, NULL as null, growth past the first block, and jb_printf of long output.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

static struct jbuf last; /* the last result, freed by the next call and at exit */

static char *str_of(const char *s, size_t n)
{
	jb_free(&last);
	memset(&last, 0, sizeof last);
	jb_str(&last, s, n);
	ck_assert(!last.oom);
	return last.p;
}
#define S(lit) str_of(lit, sizeof(lit) - 1)

START_TEST(escapes)
{
	ck_assert_str_eq(S("plain id-1"), "\"plain id-1\"");
	ck_assert_str_eq(S("a\"b\\c"), "\"a\\\"b\\\\c\"");
	ck_assert_str_eq(S("\n\r\t"), "\"\\n\\r\\t\"");
	ck_assert_str_eq(S("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"");
	ck_assert_str_eq(S("</script>"), "\"<\\/script>\"");
	ck_assert_str_eq(S("a/b"), "\"a/b\"");
	ck_assert_str_eq(S("x\0y"), "\"x\\u0000y\"");
	ck_assert_str_eq(S(""), "\"\"");
	struct jbuf j = {0};
	jb_str(&j, NULL, 0);
	ck_assert_str_eq(j.p, "null");
	jb_free(&j);
}
END_TEST

START_TEST(utf8)
{
	ck_assert_str_eq(S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	ck_assert_str_eq(S("\xc3"), "\"\\ufffd\"");                     /* truncated */
	ck_assert_str_eq(S("\xc0\xaf"), "\"\\ufffd\\ufffd\"");          /* overlong */
	ck_assert_str_eq(S("\xe0\x80\xaf"), "\"\\ufffd\\ufffd\\ufffd\""); /* overlong 3 */
	ck_assert_str_eq(S("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
	ck_assert_str_eq(S("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	ck_assert_str_eq(S("\xff"), "\"\\ufffd\"");
	ck_assert_str_eq(S("a\x80z"), "\"a\\ufffdz\"");
}
END_TEST

START_TEST(growth)
{
	struct jbuf j = {0};
	char big[10000];
	memset(big, 'q', sizeof big);
	for (int i = 0; i < 50; i++)
		jb_str(&j, big, sizeof big);
	ck_assert(!j.oom);
	ck_assert_uint_eq(j.len, 50 * (sizeof big + 2));
	ck_assert_uint_eq(strlen(j.p), j.len);
	jb_printf(&j, "%s%d", "", 7);
	ck_assert_int_eq(j.p[j.len - 1], '7');
	char fmt[600];
	memset(fmt, 'z', 599);
	fmt[599] = 0;
	size_t before = j.len;
	jb_printf(&j, "<%s>", fmt); /* longer than jb_printf's stack buffer */
	ck_assert_uint_eq(j.len, before + 601);
	ck_assert_int_eq(j.p[j.len - 1], '>');
	jb_free(&j);
	ck_assert_ptr_null(j.p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jbuf");
	TCase *tc = tcase_create("jbuf");
	tcase_add_test(tc, escapes);
	tcase_add_test(tc, utf8);
	tcase_add_test(tc, growth);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	jb_free(&last);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
