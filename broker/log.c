/*
 * broker/log.c — log lines in mosquitto's format, or one JSON object per
 * line (log_format json, vigil's option).
 *
 * Text: "1700000000: New connection from 127.0.0.1:54321 on port 1883." — a
 * Unix timestamp prefix (or log_timestamp_format via strftime), then the
 * message. The wording of the events people grep for follows mosquitto's.
 * JSON: {"ts":"2026-01-02T03:04:05.678Z","level":"notice","msg":"...",
 * "event":"connect","client_id":"...",...}: ts is RFC 3339 UTC with
 * milliseconds, msg is exactly the text line's message, and the event fields
 * come from the caller (log_event). Both formats go to every log_dest
 * (stderr, stdout, file, syslog, topic). syslog uses the daemon facility,
 * or localN with log_facility N. The log file is reopened by log_reopen
 * (SIGHUP, for logrotate).
 * Deliberately not here: buffering or a log thread (a line is written when
 * it is logged; stdio buffers the file by line).
 * Invariant: every JSON line is valid JSON, whatever bytes a client sent
 * (invalid UTF-8 becomes U+FFFD, control characters are escaped). Log
 * timestamps are the one place the broker reads the wall clock; no timeout
 * ever depends on it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "api/jbuf.h"
#include "broker.h"

struct log {
	bool in_topic; /* publishing a log line: do not log about it */
	FILE *file;
	char *file_path; /* for log_reopen */
	unsigned types;
	unsigned dest;
	bool timestamp;
	bool json;
	const char *ts_format;
};

static FILE *open_log_file(const char *path)
{
	FILE *f = fopen(path, "a");
	if (f)
		setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

void log_init(struct broker *b)
{
	struct log *l = calloc(1, sizeof(*l));
	if (!l)
		return;
	const struct config *c = b->cfg;
	l->types = c->verbose ? LOG_F_ALL : c->log_type;
	l->dest = c->log_dest;
	if (c->verbose)
		l->dest |= LOG_D_STDERR;
	l->timestamp = c->log_timestamp;
	l->ts_format = c->log_timestamp_format;
	l->json = c->log_format == LOG_FORMAT_JSON;
	if ((l->dest & LOG_D_FILE) && c->log_file) {
		l->file_path = strdup(c->log_file);
		l->file = open_log_file(c->log_file);
		if (!l->file)
			fprintf(stderr, "Error: unable to open log file %s.\n", c->log_file);
	}
	if (l->dest & LOG_D_SYSLOG) {
		/* log_facility N: localN, as mosquitto (mosquitto.conf(5)); else daemon. */
		static const int local[8] = {LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3,
					     LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};
		int n = c->log_facility;
		openlog("vigil", LOG_PID | LOG_CONS, n >= 0 && n < 8 ? local[n] : LOG_DAEMON);
	}
	b->log = l;
}

void log_close(struct broker *b)
{
	struct log *l = b->log;
	if (!l)
		return;
	if (l->file)
		fclose(l->file);
	free(l->file_path);
	if (l->dest & LOG_D_SYSLOG)
		closelog();
	free(l);
	b->log = NULL;
}

void log_reinit(struct broker *b)
{
	struct log *old = b->log;
	b->log = NULL;
	if (old && (old->dest & LOG_D_SYSLOG))
		closelog(); /* before log_init's openlog: the syslog connection is global */
	log_init(b);
	struct log *l = b->log;
	if (!l) {
		b->log = old; /* no memory: keep logging as before */
		return;
	}
	if (old && old->file && !l->file && l->file_path && old->file_path && !strcmp(l->file_path, old->file_path)) {
		l->file = old->file; /* the same name cannot be reopened: keep the old file */
		old->file = NULL;
	}
	if (old) {
		if (old->file)
			fclose(old->file);
		free(old->file_path);
		free(old);
	}
}

void log_reopen(struct broker *b)
{
	struct log *l = b->log;
	if (!l || !l->file_path)
		return;
	FILE *f = open_log_file(l->file_path);
	if (!f) {
		/* Keep writing to the old file (renamed, perhaps) rather than nowhere. */
		log_msg(b, LOG_F_ERROR, "Error: unable to reopen log file %s; still writing to the old one.",
			l->file_path);
		return;
	}
	if (l->file)
		fclose(l->file);
	l->file = f;
}

/* mosquitto's $SYS/broker/log/<letter> topics. */
static char topic_letter(unsigned type)
{
	switch (type) {
	case LOG_F_ERROR:
		return 'E';
	case LOG_F_WARNING:
		return 'W';
	case LOG_F_NOTICE:
		return 'N';
	case LOG_F_DEBUG:
		return 'D';
	case LOG_F_SUBSCRIBE:
		return 'M';
	case LOG_F_UNSUBSCRIBE:
		return 'U';
	case LOG_F_WEBSOCKETS:
		return 'W';
	default:
		return 'I';
	}
}

/* log_dest topic: publish the line (without timestamp) to $SYS/broker/log/X.
 * Never from inside routing (the match vector is in use) or recursively. */
static void log_to_topic(struct broker *b, struct log *l, unsigned type, const char *msg)
{
	if (l->in_topic || b->routing || !b->subs)
		return;
	char topic[24];
	snprintf(topic, sizeof(topic), "$SYS/broker/log/%c", topic_letter(type));
	struct message *m = message_new(NULL, mqtt_cstr(topic), mqtt_cstr(msg), (struct mqtt_str){0}, 0, false, NULL, NULL);
	if (!m)
		return;
	l->in_topic = true;
	route_message(b, m);
	l->in_topic = false;
	message_unref(&m);
}

static int syslog_prio(unsigned type)
{
	switch (type) {
	case LOG_F_ERROR:
		return LOG_ERR;
	case LOG_F_WARNING:
		return LOG_WARNING;
	case LOG_F_NOTICE:
		return LOG_NOTICE;
	case LOG_F_DEBUG:
	case LOG_F_WEBSOCKETS:
		return LOG_DEBUG;
	default:
		return LOG_INFO;
	}
}

static const char *level_name(unsigned type)
{
	switch (syslog_prio(type)) {
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_DEBUG:
		return "debug";
	default:
		return "info";
	}
}

/* ---- JSON (written with the API room's jbuf: api/jbuf.h) ------------------------- */

static void jb_field(struct jbuf *j, const char *name, const char *value)
{
	if (!value)
		return;
	jb_puts(j, ",\"");
	jb_puts(j, name);
	jb_puts(j, "\":");
	jb_cstr(j, value);
}

static void jb_num(struct jbuf *j, const char *name, unsigned long long v)
{
	jb_printf(j, ",\"%s\":%llu", name, v);
}

/* {"ts":...,"level":...,"msg":...,event fields}, no newline. */
static void json_line(struct jbuf *j, unsigned type, const struct log_ev *ev, const char *msg)
{
	struct timespec now;
	struct tm tm;
	char ts[48];
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);
	jb_puts(j, "{\"ts\":\"");
	jb_puts(j, ts);
	jb_puts(j, "\",\"level\":\"");
	jb_puts(j, level_name(type));
	jb_puts(j, "\",\"msg\":");
	jb_cstr(j, msg);
	if (ev) {
		jb_field(j, "event", ev->event);
		jb_field(j, "client_id", ev->client_id);
		jb_field(j, "address", ev->address);
		jb_field(j, "username", ev->username);
		jb_field(j, "reason", ev->reason);
		jb_field(j, "topic", ev->topic);
		if (ev->has_keepalive)
			jb_num(j, "keepalive", ev->keepalive);
		if (ev->has_protocol)
			jb_num(j, "protocol_level", ev->protocol);
		if (ev->silent_ms)
			jb_num(j, "silent_ms", ev->silent_ms);
	}
	jb_puts(j, "}");
}

/* ---- writing a line ---------------------------------------------------------------- */

/* The whole line (newline included) to the streams and the file. */
static void emit_line(struct log *l, const char *line)
{
	if (!l || (l->dest & LOG_D_STDERR))
		fputs(line, stderr);
	if (l && (l->dest & LOG_D_STDOUT)) {
		fputs(line, stdout);
		fflush(stdout);
	}
	if (l && l->file)
		fputs(line, l->file);
}

/* The message without timestamp or newline (text), or the JSON object, to
 * syslog and the log topic. */
static void emit_msg(struct broker *b, struct log *l, unsigned type, const char *msg)
{
	if (l && (l->dest & LOG_D_SYSLOG))
		syslog(syslog_prio(type), "%s", msg);
	if (l && (l->dest & LOG_D_TOPIC))
		log_to_topic(b, l, type, msg);
}

static void vlog(struct broker *b, unsigned type, const struct log_ev *ev, const char *fmt, va_list ap)
{
	struct log *l = b->log;
	char msg[1024];
	if (l && !(l->types & type))
		return;
	if (l && (l->dest & LOG_D_NONE))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (l && l->json) {
		char stack[2048];
		struct jbuf j;
		jb_init_buf(&j, stack, sizeof(stack));
		json_line(&j, type, ev, msg);
		size_t body = j.len;
		jb_puts(&j, "\n");
		if (!j.oom) {
			emit_line(l, j.p);
			j.p[body] = 0; /* syslog and the topic: the object without the newline */
			emit_msg(b, l, type, j.p);
		}
		jb_free(&j);
		return;
	}
	char line[1200];
	time_t t = time(NULL);
	if (!l || !l->timestamp) {
		snprintf(line, sizeof(line), "%s\n", msg);
	} else if (l->ts_format) {
		char ts[128];
		struct tm tm;
		localtime_r(&t, &tm);
		if (strftime(ts, sizeof(ts), l->ts_format, &tm) == 0)
			ts[0] = 0;
		snprintf(line, sizeof(line), "%s: %s\n", ts, msg);
	} else {
		snprintf(line, sizeof(line), "%ld: %s\n", (long)t, msg);
	}
	emit_line(l, line);
	emit_msg(b, l, type, msg);
}

void log_msg(struct broker *b, unsigned type, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(b, type, NULL, fmt, ap);
	va_end(ap);
}

void log_event(struct broker *b, unsigned type, const struct log_ev *ev, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(b, type, ev, fmt, ap);
	va_end(ap);
}
