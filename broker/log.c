/*
 * broker/log.c — log lines in mosquitto's format.
 *
 * "1700000000: New connection from 127.0.0.1:54321 on port 1883." — a Unix
 * timestamp prefix (or log_timestamp_format via strftime), then the message.
 * The wording of the events people grep for follows mosquitto's. syslog
 * uses the daemon facility, or localN with log_facility N. Log
 * timestamps are the one place the broker reads the wall clock; no timeout
 * ever depends on it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "broker.h"

struct log {
	bool in_topic; /* publishing a log line: do not log about it */
	FILE *file;
	unsigned types;
	unsigned dest;
	bool timestamp;
	const char *ts_format;
};

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
	if ((l->dest & LOG_D_FILE) && c->log_file) {
		l->file = fopen(c->log_file, "a");
		if (!l->file)
			fprintf(stderr, "Error: unable to open log file %s.\n", c->log_file);
		else
			setvbuf(l->file, NULL, _IOLBF, 0);
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
	if (l->dest & LOG_D_SYSLOG)
		closelog();
	free(l);
	b->log = NULL;
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
		return LOG_DEBUG;
	default:
		return LOG_INFO;
	}
}

void log_msg(struct broker *b, unsigned type, const char *fmt, ...)
{
	struct log *l = b->log;
	char msg[1024], line[1200];
	if (l && !(l->types & type))
		return;
	if (l && (l->dest & LOG_D_NONE))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
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
	if (!l || (l->dest & LOG_D_STDERR))
		fputs(line, stderr);
	if (l && (l->dest & LOG_D_STDOUT)) {
		fputs(line, stdout);
		fflush(stdout);
	}
	if (l && l->file)
		fputs(line, l->file);
	if (l && (l->dest & LOG_D_SYSLOG))
		syslog(syslog_prio(type), "%s", msg);
	if (l && (l->dest & LOG_D_TOPIC))
		log_to_topic(b, l, type, msg);
}
