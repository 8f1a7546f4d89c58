/*
 * tests/unit/test_log.c — log.c's JSON encoder on bytes no well-behaved
 * client sends: invalid and truncated UTF-8, overlong forms, surrogates,
 * control characters, quotes and backslashes must all come out as one valid
 * JSON line with exactly the expected escapes; valid multi-byte UTF-8 passes
 * unchanged; a message longer than the line buffer stays valid JSON. And
 * the text format of the same call is mosquitto's "<unix time>: message".
 * (The black-box side is tests/ops/test_logs.py.)
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"

static char path[64];

/* Log one event to a fresh file with the given format; return the file's text (malloc'd). */
static char *log_one(int format, const struct log_ev *ev, const char *msg)
{
	struct broker b;
	struct config cfg;
	memset(&b, 0, sizeof(b));
	config_init(&cfg);
	snprintf(path, sizeof(path), "/tmp/vigil-test-log-%d.log", (int)getpid());
	unlink(path);
	cfg.log_dest = LOG_D_FILE;
	cfg.log_file = strdup(path);
	cfg.log_format = format;
	b.cfg = &cfg;
	log_init(&b);
	ck_assert_ptr_nonnull(b.log);
	log_event(&b, LOG_F_NOTICE, ev, "%s", msg);
	log_close(&b);
	config_free(&cfg);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char *text = calloc(1, 65536);
	size_t n = fread(text, 1, 65535, f);
	text[n] = 0;
	fclose(f);
	unlink(path);
	return text;
}

/* The part of the line after "ts":"...", so the clock does not matter. */
static const char *after_ts(const char *line)
{
	const char *p = strstr(line, "\"level\":");
	ck_assert_ptr_nonnull(p);
	ck_assert_msg(strncmp(line, "{\"ts\":\"", 7) == 0, "line starts with ts: %s", line);
	ck_assert_msg(line[7 + 24] == '"' && line[7 + 19] == '.' && line[7 + 23] == 'Z', "ts shape: %s", line);
	return p;
}

START_TEST(escapes_and_invalid_utf8)
{
	/* \xc3\xa9 valid é; \xe2\x82 truncated; \xc0\xaf overlong '/'; \xed\xa0\x80 a surrogate;
	 * \xf0\x9f\x98\x80 valid 4-byte; \xff never valid; \x01 control; \x7f DEL escaped (the one writer,
	 * api/jbuf.c, also used by the HTTP API: the same bytes give the same JSON everywhere). */
	struct log_ev ev = {.event = "connect", .client_id = "a\"b\\c\xc3\xa9\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xf0\x9f\x98\x80\xff\x01\x7f",
			    .username = "\n\r\t", .keepalive = 7, .has_keepalive = true};
	char *text = log_one(LOG_FORMAT_JSON, &ev, "m\xff");
	const char *want = "\"level\":\"notice\",\"msg\":\"m\\ufffd\",\"event\":\"connect\","
			   "\"client_id\":\"a\\\"b\\\\c\xc3\xa9\\ufffd\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|"
			   "\xf0\x9f\x98\x80\\ufffd\\u0001\\u007f\",\"username\":\"\\n\\r\\t\",\"keepalive\":7}\n";
	ck_assert_str_eq(after_ts(text), want);
	free(text);
}
END_TEST

START_TEST(long_message_stays_one_line)
{
	char big[3000];
	memset(big, '"', sizeof(big) - 1); /* every byte doubles when escaped */
	big[sizeof(big) - 1] = 0;
	char *text = log_one(LOG_FORMAT_JSON, NULL, big);
	size_t n = strlen(text);
	ck_assert_msg(n > 2000 && text[n - 1] == '\n' && text[n - 2] == '}', "one complete line (%zu bytes)", n);
	ck_assert_ptr_eq(strchr(text, '\n'), text + n - 1);
	/* the message was cut at 1023 bytes by the line buffer, each escaped as \" */
	const char *msg = strstr(text, "\"msg\":\"");
	ck_assert_ptr_nonnull(msg);
	size_t quotes = 0;
	for (const char *p = msg + 7; p[0] == '\\' && p[1] == '"'; p += 2)
		quotes++;
	ck_assert_uint_eq(quotes, 1023);
	free(text);
}
END_TEST

START_TEST(text_format_is_mosquittos)
{
	struct log_ev ev = {.event = "disconnect", .client_id = "x"};
	char *text = log_one(LOG_FORMAT_TEXT, &ev, "Client x disconnected.");
	char *end;
	long t = strtol(text, &end, 10);
	ck_assert_msg(t > 1600000000 && strcmp(end, ": Client x disconnected.\n") == 0, "text line: %s", text);
	free(text);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("json");
	tcase_add_test(tc, escapes_and_invalid_utf8);
	tcase_add_test(tc, long_message_stays_one_line);
	tcase_add_test(tc, text_format_is_mosquittos);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
