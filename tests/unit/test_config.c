/*
 * tests/unit/test_config.c — the mosquitto.conf parser: every implemented
 * option, every error path and its "file:line:" message, the warnings,
 * include_dir order, per_listener_settings routing, mosquitto 2.0.11's
 * default listener and local-only mode, cross-option checks, SIGHUP merge,
 * and three real-world files. Behaviour references are mosquitto.conf(5) and
 * what mosquitto 2.0.11 itself was seen to do (mosquitto-compat.md); the only
 * MQTT-normative values here are limits sent in CONNACK (cited where used).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

struct wlog {
	int n;
	char msg[16][512];
};

static void warn_cb(const char *m, void *u)
{
	struct wlog *w = u;
	if (w->n < 16)
		snprintf(w->msg[w->n], sizeof(w->msg[0]), "%s", m);
	w->n++;
}

static bool has_warning(const struct wlog *w, const char *needle)
{
	for (int i = 0; i < w->n && i < 16; i++)
		if (strstr(w->msg[i], needle))
			return true;
	return false;
}

static struct config C;
static struct wlog W;
static char E[512];

static void setup(void)
{
	config_init(&C);
	memset(&W, 0, sizeof(W));
	E[0] = '\0';
}

static void teardown(void)
{
	config_free(&C);
}

/* Parse text as "t.conf" and finish with no -p. */
static int load(const char *text)
{
	if (config_parse_string(&C, "t.conf", text, warn_cb, &W, E, sizeof(E)))
		return -1;
	return config_finish_warn(&C, 0, warn_cb, &W, E, sizeof(E));
}

#define LOAD_OK(text) ck_assert_msg(load(text) == 0, "unexpected error: %s", E)
#define LOAD_ERR(text, msg)                                                                                    \
	do {                                                                                                   \
		ck_assert_int_eq(load(text), -1);                                                              \
		ck_assert_str_eq(E, msg);                                                                      \
	} while (0)
#define LOAD_ERR_PREFIX(text, prefix)                                                                          \
	do {                                                                                                   \
		ck_assert_int_eq(load(text), -1);                                                              \
		ck_assert_msg(!strncmp(E, prefix, strlen(prefix)), "got '%s'", E);                             \
	} while (0)

/* ---- defaults, local-only mode, the default listener ----------------------- */

START_TEST(defaults_are_mosquittos)
{
	LOAD_OK("");
	ck_assert_uint_eq(C.max_inflight_messages, 20);
	ck_assert_uint_eq(C.max_queued_messages, 1000);
	ck_assert_uint_eq(C.max_keepalive, 65535);
	ck_assert(C.retain_available);
	ck_assert(C.set_tcp_nodelay); /* vigil's default; mosquitto's is false (compat) */
	ck_assert_int_eq(C.persistent_client_expiration, -1);
	ck_assert(C.security.allow_zero_length_clientid);
	ck_assert_str_eq(C.security.auto_id_prefix, "auto-");
	ck_assert_uint_eq(C.log_dest, LOG_D_STDERR);
	ck_assert_uint_eq(C.log_type, LOG_F_ERROR | LOG_F_WARNING | LOG_F_NOTICE | LOG_F_INFORMATION);
	ck_assert(C.log_timestamp && C.connection_messages && C.check_retain_source);
	ck_assert_uint_eq(C.sys_interval, 10);
	ck_assert_uint_eq(C.connect_timeout, 10);
	ck_assert_uint_eq(C.autosave_interval, 1800);
	ck_assert_str_eq(C.user, "mosquitto");
	ck_assert_ptr_null(C.persistence_file); /* the store's default: vigil.db */
	ck_assert_uint_eq(C.max_packet_size, 0);
	ck_assert_uint_eq(C.message_size_limit, 0);
	ck_assert(!C.persistence && !C.per_listener_settings && !C.queue_qos0_messages);
}
END_TEST

START_TEST(no_listener_is_local_only_mode)
{
	LOAD_OK("allow_anonymous false\n");
	ck_assert(C.local_only);
	ck_assert_uint_eq(C.n_listeners, 2);
	ck_assert_str_eq(C.listeners[0].bind_address, "127.0.0.1");
	ck_assert_str_eq(C.listeners[1].bind_address, "::1");
	ck_assert_int_eq(C.listeners[0].port, 1883);
	ck_assert_int_eq(C.listeners[1].port, 1883);
	ck_assert(!C.listeners[0].bind_optional && C.listeners[1].bind_optional);
	ck_assert_int_eq(C.listeners[0].max_qos, 2);
	ck_assert_int_eq(C.listeners[0].max_topic_alias, 10);
	/* mosquitto 2.0 forces anonymous access on in local-only mode */
	ck_assert_int_eq(C.security.allow_anonymous, 1);
	ck_assert_int_eq(config_security(&C, &C.listeners[0])->allow_anonymous, 1);
}
END_TEST

START_TEST(cmdline_port_stays_local_only)
{
	ck_assert_int_eq(config_parse_string(&C, "t.conf", "", warn_cb, &W, E, sizeof(E)), 0);
	ck_assert_int_eq(config_finish(&C, 18883, E, sizeof(E)), 0);
	ck_assert(C.local_only);
	ck_assert_uint_eq(C.n_listeners, 2);
	ck_assert_int_eq(C.listeners[0].port, 18883);
	ck_assert_str_eq(C.listeners[0].bind_address, "127.0.0.1");
	ck_assert_int_eq(C.listeners[1].port, 18883);
}
END_TEST

START_TEST(cmdline_port_ignored_with_listeners)
{
	ck_assert_int_eq(config_parse_string(&C, "t.conf", "listener 1884\n", warn_cb, &W, E, sizeof(E)), 0);
	ck_assert_int_eq(config_finish(&C, 18883, E, sizeof(E)), 0);
	ck_assert(!C.local_only);
	ck_assert_uint_eq(C.n_listeners, 1);
	ck_assert_int_eq(C.listeners[0].port, 1884);
	ck_assert_ptr_null(C.listeners[0].bind_address);
	ck_assert_int_eq(C.security.allow_anonymous, 0); /* mosquitto 2.0: false once a listener exists */
}
END_TEST

START_TEST(listener_option_before_listener_starts_default_listener)
{
	LOAD_OK("max_connections 5\nlistener 1884\n");
	ck_assert(!C.local_only);
	ck_assert_uint_eq(C.n_listeners, 2);
	ck_assert_int_eq(C.listeners[0].port, 1884);
	ck_assert_int_eq(C.listeners[0].max_connections, -1);
	ck_assert_int_eq(C.listeners[1].port, 1883); /* appended last, as mosquitto */
	ck_assert_ptr_null(C.listeners[1].bind_address);
	ck_assert_int_eq(C.listeners[1].max_connections, 5);
	ck_assert_ptr_null(C.listeners[1].file);
	ck_assert_int_eq(W.n, 0); /* main file, no listener above: no surprise */
}
END_TEST

START_TEST(port_and_bind_address_are_the_default_listener)
{
	LOAD_OK("port 1885\nbind_address 127.0.0.2\n");
	ck_assert(!C.local_only);
	ck_assert_uint_eq(C.n_listeners, 1);
	ck_assert_int_eq(C.listeners[0].port, 1885);
	ck_assert_str_eq(C.listeners[0].bind_address, "127.0.0.2");
	ck_assert(has_warning(&W, "t.conf:1: option 'port' is deprecated"));
	ck_assert(has_warning(&W, "t.conf:2: option 'bind_address' is deprecated"));
}
END_TEST

START_TEST(some_options_do_not_start_default_listener)
{
	/* mosquitto 2.0.11's list leaves max_topic_alias and http_dir out */
	LOAD_OK("max_topic_alias 5\nhttp_dir /srv\n");
	ck_assert(C.local_only);
	ck_assert_uint_eq(C.n_listeners, 2);
	ck_assert_int_eq(C.listeners[0].max_topic_alias, 10);
	ck_assert_int_eq(W.n, 2); /* both lost, as in mosquitto, but not silently */
	/* and max_connections -1 is its default value */
	config_free(&C);
	LOAD_OK("max_connections -1\n");
	ck_assert(C.local_only);
}
END_TEST

START_TEST(options_lost_with_the_default_listener_warn)
{
	LOAD_OK("per_listener_settings true\nacl_file /acl\nmax_topic_alias 3\nlistener 1883 # main\n");
	ck_assert_uint_eq(C.n_listeners, 1);
	ck_assert_ptr_null(C.listeners[0].bind_address);
	ck_assert_ptr_null(C.listeners[0].security.acl_file);
	ck_assert_int_eq(W.n, 2);
	ck_assert(has_warning(&W, "t.conf: option 'max_topic_alias' comes before any 'listener' line and applies "
				  "to no listener"));
	ck_assert(has_warning(&W, "t.conf: option 'acl_file' comes before any 'listener' line"));
}
END_TEST

START_TEST(port_after_a_listener_is_still_the_default_listener)
{
	LOAD_OK("listener 1884\nport 1885\nlistener 1886\n");
	ck_assert_uint_eq(C.n_listeners, 3);
	ck_assert_int_eq(C.listeners[0].port, 1884);
	ck_assert_int_eq(C.listeners[1].port, 1886);
	ck_assert_int_eq(C.listeners[2].port, 1885);
	ck_assert_ptr_null(C.listeners[2].bind_address);
}
END_TEST

/* ---- every option ------------------------------------------------------------ */

START_TEST(every_global_option)
{
	LOAD_OK("listener 1883\n"
		"allow_anonymous true\nallow_zero_length_clientid false\nauto_id_prefix gen-\n"
		"password_file /etc/pw\nacl_file /etc/acl\npsk_file /etc/psk\n"
		"max_keepalive 60\nmax_packet_size 1000\nmessage_size_limit 900\nmax_inflight_messages 5\n"
		"max_inflight_bytes 123456789012\nmax_queued_messages 7\nmax_queued_bytes 99\nmemory_limit 1048576\n"
		"queue_qos0_messages true\nretain_available false\nset_tcp_nodelay false\n"
		"upgrade_outgoing_qos true\ncheck_retain_source false\npersistent_client_expiration 2h\n"
		"sys_interval 0\nconnect_timeout 3\npid_file /run/v.pid\nuser vigil\npersistence true\n"
		"persistence_file v.db\npersistence_location /var/lib/v/\nautosave_interval 60\n"
		"log_dest syslog\nlog_dest topic\nlog_type debug\nlog_type subscribe\nlog_timestamp false\n"
		"log_timestamp_format %Y-%m-%dT%H:%M:%S\nconnection_messages false\n");
	ck_assert_int_eq(C.security.allow_anonymous, 1);
	ck_assert(!C.security.allow_zero_length_clientid);
	ck_assert_str_eq(C.security.auto_id_prefix, "gen-");
	ck_assert_str_eq(C.security.password_file, "/etc/pw");
	ck_assert_str_eq(C.security.acl_file, "/etc/acl");
	ck_assert_str_eq(C.security.psk_file, "/etc/psk");
	ck_assert_uint_eq(C.max_keepalive, 60);
	ck_assert_uint_eq(C.max_packet_size, 1000);
	ck_assert_uint_eq(C.message_size_limit, 900);
	ck_assert_uint_eq(C.max_inflight_messages, 5);
	ck_assert_uint_eq(C.max_inflight_bytes, 123456789012ull);
	ck_assert_uint_eq(C.max_queued_messages, 7);
	ck_assert_uint_eq(C.max_queued_bytes, 99);
	ck_assert_uint_eq(C.memory_limit, 1048576);
	ck_assert(C.queue_qos0_messages && !C.retain_available && !C.set_tcp_nodelay);
	ck_assert(C.upgrade_outgoing_qos && !C.check_retain_source);
	ck_assert_int_eq(C.persistent_client_expiration, 7200);
	ck_assert_uint_eq(C.sys_interval, 0);
	ck_assert_uint_eq(C.connect_timeout, 3);
	ck_assert_str_eq(C.pid_file, "/run/v.pid");
	ck_assert_str_eq(C.user, "vigil");
	ck_assert(C.persistence);
	ck_assert_str_eq(C.persistence_file, "v.db");
	ck_assert_str_eq(C.persistence_location, "/var/lib/v/");
	ck_assert_uint_eq(C.autosave_interval, 60);
	ck_assert_uint_eq(C.log_dest, LOG_D_SYSLOG | LOG_D_TOPIC); /* the first log_dest replaces stderr */
	ck_assert_uint_eq(C.log_type, LOG_F_DEBUG | LOG_F_SUBSCRIBE);
	ck_assert(!C.log_timestamp && !C.connection_messages);
	ck_assert_str_eq(C.log_timestamp_format, "%Y-%m-%dT%H:%M:%S");
	/* parsed, but not acted on by the broker yet: said so, once each */
	ck_assert_int_eq(W.n, 0); /* every global option is implemented now */
	ck_assert(!has_warning(&W, "max_inflight_bytes")); /* implemented */
	ck_assert(!has_warning(&W, "memory_limit"));       /* implemented (mem.c) */
	ck_assert(!has_warning(&W, "upgrade_outgoing_qos")); /* implemented */
	ck_assert(!has_warning(&W, "check_retain_source")); /* implemented */
	ck_assert(!has_warning(&W, "persistence")); /* implemented (broker/store/) */
	ck_assert(!has_warning(&W, "autosave_interval")); /* accepted: every change is committed at once */
}
END_TEST

START_TEST(every_listener_option)
{
	LOAD_OK("listener 8883 0.0.0.0\nbind_interface eth0\nsocket_domain ipv4\nmount_point tenant/a/\n"
		"max_connections 100\nmax_qos 1\nmax_topic_alias 0\nuse_username_as_clientid true\n"
		"tcp_keepalive 30 5 4\ntcp_user_timeout 20000\ncafile /c/ca.pem\ncapath /c/\ncertfile /c/s.pem\n"
		"keyfile /c/s.key\ntls_version tlsv1.3\nciphers ECDHE-RSA-AES128-GCM-SHA256\n"
		"ciphers_tls1.3 TLS_AES_128_GCM_SHA256\ncrlfile /c/crl.pem\ndhparamfile /c/dh.pem\n"
		"psk_hint hint one\nrequire_certificate true\nuse_identity_as_username true\n"
		"use_subject_as_username true\ntls_keyform pem\n"
		"listener 8080\nprotocol websockets\nhttp_dir /srv/www\nsocket_domain ipv6\nmaximum_qos 0\n");
	ck_assert_uint_eq(C.n_listeners, 2);
	const struct listener_conf *l = &C.listeners[0];
	ck_assert_int_eq(l->port, 8883);
	ck_assert_str_eq(l->bind_address, "0.0.0.0");
	ck_assert_str_eq(l->bind_interface, "eth0");
	ck_assert_int_eq(l->family, AF_INET);
	ck_assert_str_eq(l->mount_point, "tenant/a/");
	ck_assert_int_eq(l->max_connections, 100);
	ck_assert_int_eq(l->max_qos, 1); /* v5 MQTT-3.2.2-9: sent as Maximum QoS in CONNACK */
	ck_assert_int_eq(l->max_topic_alias, 0);
	ck_assert(l->use_username_as_clientid && !l->websockets);
	ck_assert_int_eq(l->tcp_keepalive_idle, 30);
	ck_assert_int_eq(l->tcp_keepalive_interval, 5);
	ck_assert_int_eq(l->tcp_keepalive_count, 4);
	ck_assert_uint_eq(l->tcp_user_timeout_ms, 20000);
	ck_assert_str_eq(l->cafile, "/c/ca.pem");
	ck_assert_str_eq(l->capath, "/c/");
	ck_assert_str_eq(l->certfile, "/c/s.pem");
	ck_assert_str_eq(l->keyfile, "/c/s.key");
	ck_assert_str_eq(l->tls_version, "tlsv1.3");
	ck_assert_str_eq(l->ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
	ck_assert_str_eq(l->ciphers_tls13, "TLS_AES_128_GCM_SHA256");
	ck_assert_str_eq(l->crlfile, "/c/crl.pem");
	ck_assert_str_eq(l->dhparamfile, "/c/dh.pem");
	ck_assert_str_eq(l->psk_hint, "hint one");
	ck_assert(l->require_certificate && l->use_identity_as_username && l->use_subject_as_username);
	ck_assert_str_eq(l->file, "t.conf");
	ck_assert_int_eq(l->line, 1);
	l = &C.listeners[1];
	ck_assert(l->websockets);
	ck_assert_str_eq(l->http_dir, "/srv/www");
	ck_assert_int_eq(l->family, AF_INET6);
	ck_assert_int_eq(l->max_qos, 0);
	ck_assert_int_eq(l->line, 25);
}
END_TEST

START_TEST(not_yet_options_at_default_values_are_quiet)
{
	LOAD_OK("persistence false\ncheck_retain_source true\nmemory_limit 0\nautosave_interval 1800\n"
		"upgrade_outgoing_qos false\nmax_inflight_bytes 0\n");
	ck_assert_int_eq(W.n, 0);
	config_free(&C);
	LOAD_OK("listener 1\nbind_interface lo\n"); /* implemented: no warning */
	ck_assert_int_eq(W.n, 0);
	ck_assert_str_eq(C.listeners[0].bind_interface, "lo");
}
END_TEST

START_TEST(unix_socket_listener)
{
	LOAD_OK("listener 0 /run/vigil.sock\nallow_anonymous true\n");
	ck_assert_uint_eq(C.n_listeners, 1);
	ck_assert_int_eq(C.listeners[0].port, 0);
	ck_assert_str_eq(C.listeners[0].unix_path, "/run/vigil.sock");
	ck_assert_ptr_null(C.listeners[0].bind_address);
}
END_TEST

START_TEST(expiration_units)
{
	static const struct {
		const char *v;
		long long s;
	} t[] = {{"2h", 7200}, {"14d", 14 * 86400}, {"1w", 7 * 86400}, {"2m", 60 * 86400}, {"1y", 365 * 86400}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char buf[64];
		config_free(&C);
		snprintf(buf, sizeof(buf), "persistent_client_expiration %s\n", t[i].v);
		LOAD_OK(buf);
		ck_assert_int_eq(C.persistent_client_expiration, t[i].s);
	}
}
END_TEST

START_TEST(negative_values_clamp_as_mosquitto)
{
	LOAD_OK("listener 1883\nmax_queued_messages -1\nmax_connections -5\nautosave_interval -3\n");
	ck_assert_uint_eq(C.max_queued_messages, 0);
	ck_assert_int_eq(C.listeners[0].max_connections, -1);
	ck_assert_uint_eq(C.autosave_interval, 0);
}
END_TEST

START_TEST(log_dest_and_type_edge_cases)
{
	LOAD_OK("log_dest none\nlog_dest file /var/log/v.log\nlog_type none\nlog_type warning error\n");
	ck_assert_uint_eq(C.log_dest, LOG_D_FILE);
	ck_assert_str_eq(C.log_file, "/var/log/v.log");
	ck_assert_uint_eq(C.log_type, LOG_F_WARNING | LOG_F_ERROR);
	config_free(&C);
	LOAD_OK("log_dest stdout\nlog_dest none\nlog_type all\n");
	ck_assert_uint_eq(C.log_dest, LOG_D_NONE);
	ck_assert_uint_eq(C.log_type, LOG_F_ALL);
}
END_TEST

START_TEST(verbose_and_daemon)
{
	C.verbose = true;
	C.daemon = true;
	LOAD_OK("log_type error\n");
	ck_assert_uint_eq(C.log_type, LOG_F_ALL);
	ck_assert_uint_eq(C.log_dest, LOG_D_NONE);
}
END_TEST

/* ---- syntax -------------------------------------------------------------------- */

START_TEST(syntax_comments_blanks_whitespace)
{
	LOAD_OK("# comment\n\n   \n\t\n  listener 1883   \r\n"
		"allow_anonymous\ttrue  # trailing comment\n#max_qos 7\nmount_point a b  \n"
		"max_keepalive 30");
	ck_assert_uint_eq(C.n_listeners, 1);
	ck_assert_int_eq(C.security.allow_anonymous, 1);
	ck_assert_str_eq(C.listeners[0].mount_point, "a b"); /* strings take the rest of the line */
	ck_assert_uint_eq(C.max_keepalive, 30);               /* last line without newline */
	ck_assert_int_eq(W.n, 0);
}
END_TEST

START_TEST(bool_spellings)
{
	LOAD_OK("listener 1\nallow_anonymous 1\nretain_available 0\nqueue_qos0_messages true\n");
	ck_assert_int_eq(C.security.allow_anonymous, 1);
	ck_assert(!C.retain_available && C.queue_qos0_messages);
	config_free(&C);
	LOAD_ERR("allow_anonymous True\n", "t.conf:1: allow_anonymous: invalid value 'True' (expected true or false)");
}
END_TEST

START_TEST(extra_words_warn)
{
	LOAD_OK("listener 1883 127.0.0.1 extra\nmax_qos 1 2\n");
	ck_assert(has_warning(&W, "t.conf:1: listener: extra text 'extra' ignored"));
	ck_assert(has_warning(&W, "t.conf:2: max_qos: extra text '2' ignored"));
	ck_assert_int_eq(C.listeners[0].max_qos, 1);
}
END_TEST

/* ---- errors -------------------------------------------------------------------- */

START_TEST(unknown_option)
{
	LOAD_ERR("listener 1883\nfoo_bar 1\n", "t.conf:2: unknown configuration option 'foo_bar'");
	config_free(&C);
	LOAD_ERR("daemon true\n", "t.conf:1: unknown configuration option 'daemon'"); /* -d only, as mosquitto */
	config_free(&C);
	LOAD_ERR("global_plugin x\n", "t.conf:1: unknown configuration option 'global_plugin'"); /* 2.1 */
}
END_TEST

static const struct {
	const char *text, *msg;
} bad[] = {
	{"max_keepalive abc\n", "t.conf:1: max_keepalive: invalid value 'abc' (expected an integer 1..65535)"},
	{"max_keepalive 70000\n", "t.conf:1: max_keepalive: invalid value '70000' (expected an integer 1..65535)"},
	{"max_keepalive 12abc\n", "t.conf:1: max_keepalive: invalid value '12abc' (expected an integer 1..65535)"},
	{"max_keepalive\n", "t.conf:1: max_keepalive: missing value"},
	{"password_file\n", "t.conf:1: password_file: missing value"},
	{"\n\nmax_packet_size 10\n", "t.conf:3: max_packet_size: invalid value '10' (expected an integer 20..4294967295)"},
	{"message_size_limit 300000000\n",
	 "t.conf:1: message_size_limit: invalid value '300000000' (expected an integer 0..268435455)"},
	{"max_inflight_messages 70000\n",
	 "t.conf:1: max_inflight_messages: invalid value '70000' (expected an integer 0..65535)"},
	{"memory_limit 10k\n", "t.conf:1: memory_limit: invalid value '10k' (expected an integer >= 0)"},
	{"log_facility 8\n", "t.conf:1: log_facility: invalid value '8' (expected an integer 0..7)"},
	{"websockets_headers_size 65536\n",
	 "t.conf:1: websockets_headers_size: invalid value '65536' (expected an integer 0..65535)"},
	{"sys_interval -1\n", "t.conf:1: sys_interval: invalid value '-1' (expected an integer 0..65535)"},
	{"connect_timeout 0\n", "t.conf:1: connect_timeout: invalid value '0' (expected an integer 1..3600)"},
	{"listener 1\nmax_qos 3\n", "t.conf:2: max_qos: invalid value '3' (expected an integer 0..2)"},
	{"listener 1\nmax_topic_alias 70000\n",
	 "t.conf:2: max_topic_alias: invalid value '70000' (expected an integer 0..65535)"},
	{"listener 1\nmount_point a/#\n",
	 "t.conf:2: mount_point: invalid value 'a/#' (a topic prefix cannot contain '+' or '#')"},
	{"listener 1\nsocket_domain ipv5\n", "t.conf:2: socket_domain: invalid value 'ipv5' (expected ipv4 or ipv6)"},
	{"listener 1\nprotocol http\n", "t.conf:2: protocol: invalid value 'http' (expected mqtt, websockets or http_api)"},
	{"listener 1\ntls_version tlsv1.0\n",
	 "t.conf:2: tls_version: invalid value 'tlsv1.0' (expected tlsv1.3, tlsv1.2 or tlsv1.1)"},
	{"log_dest foo\n",
	 "t.conf:1: log_dest: invalid value 'foo' (expected stderr, stdout, syslog, topic, file PATH or none)"},
	{"log_dest file\n", "t.conf:1: log_dest file: missing file name"},
	{"log_dest file /a\nlog_dest file /b\n", "t.conf:2: log_dest file: given twice (only one log file, as mosquitto)"},
	{"log_type foo\n", "t.conf:1: log_type: invalid value 'foo' (expected error, warning, notice, information, "
			   "debug, subscribe, unsubscribe, websockets, all or none)"},
	{"persistent_client_expiration 5\n", "t.conf:1: persistent_client_expiration: invalid value '5' (expected a "
					     "number followed by h, d, w, m or y, e.g. 14d)"},
	{"persistent_client_expiration 5s\n", "t.conf:1: persistent_client_expiration: invalid value '5s' (expected "
					      "a number followed by h, d, w, m or y, e.g. 14d)"},
	{"listener 1\ntcp_keepalive 30 5\n",
	 "t.conf:2: tcp_keepalive: expected IDLE INTERVAL COUNT (seconds, seconds, probes)"},
	{"listener 1\ntcp_keepalive 30 5 200\n",
	 "t.conf:2: tcp_keepalive COUNT: invalid value '200' (expected an integer 1..127)"},
	{"listener 70000\n", "t.conf:1: listener: invalid value '70000' (expected an integer 0..65535)"},
	{"listener abc\n", "t.conf:1: listener: invalid value 'abc' (expected an integer 0..65535)"},
	{"listener\n", "t.conf:1: listener: missing port"},
	{"listener 0\n", "t.conf:1: listener: port 0 needs a Unix socket path (listener 0 /path/to/socket)"},
	{"port 0\n", "t.conf:1: port: invalid value '0' (expected an integer 1..65535)"},
	{"listener 1883\nlistener 1884\nlistener 1883\n",
	 "t.conf:3: listener: the same port and address as the listener at t.conf:1"},
	{"password_file /a\npassword_file /b\n",
	 "t.conf:2: password_file: given twice (mosquitto refuses duplicate values too)"},
	{"listener 1\ntls_keyform engine\n", "t.conf:2: tls_keyform engine: OpenSSL engines are not supported by vigil"},
	{"listener 1\ntls_engine pkcs11\n",
	 "t.conf:2: option 'tls_engine' selects an OpenSSL engine, which vigil does not support"},
};

START_TEST(bad_values)
{
	LOAD_ERR(bad[_i].text, bad[_i].msg);
}
END_TEST

#include "test_config_bridge.h"
START_TEST(bridges_plugins_and_prefixes_are_errors)
{
	/* bridge_require_ocsp is a bridge option now (bool; needs a CA: tests/ops/test_bridge_ocsp.py) */
	config_free(&C);
	LOAD_OK("listener 1883\nconnection b\naddress h\ntopic x out 0\nbridge_cafile /etc/ssl/certs/ca-certificates.crt\n"
		"bridge_require_ocsp true\n");
	ck_assert(C.n_bridges == 1 && C.bridges[0].require_ocsp);
	config_free(&C);
	LOAD_ERR_PREFIX("listener 1883\nconnection b\naddress h\ntopic x out 0\nbridge_require_ocsp maybe\n",
			"t.conf:5: bridge_require_ocsp: invalid value");
	config_free(&C);
	LOAD_ERR_PREFIX("listener 1883\nconnection b\naddress h\ntopic x out 0\nbridge_require_ocsp true\n",
			"t.conf:2: bridge 'b': bridge_require_ocsp needs bridge_cafile or bridge_capath");
	static const char *const plugins[] = {"plugin", "auth_plugin", "plugin_opt_db", "auth_opt_host",
					      "auth_plugin_deny_special_chars"};
	for (size_t i = 0; i < sizeof(plugins) / sizeof(plugins[0]); i++) {
		char text[128], want[128];
		config_free(&C);
		snprintf(text, sizeof(text), "%s x\n", plugins[i]);
		snprintf(want, sizeof(want), "t.conf:1: option '%s' loads a mosquitto plugin", plugins[i]);
		LOAD_ERR_PREFIX(text, want);
	}
	config_free(&C);
	LOAD_ERR_PREFIX("clientid_prefixes secure-\n", "t.conf:1: option 'clientid_prefixes' restricts client ids");
}
END_TEST

START_TEST(unsupported_options_warn)
{
	LOAD_OK("listener 1883\nlog_facility 5\nwebsockets_log_level 255\nwebsockets_headers_size 4096\n"
		"allow_duplicate_messages true\nautosave_on_changes true\nretry_interval 20\nlog_dest dlt\n");
	ck_assert_int_eq(W.n, 3); /* the first three are implemented now: quiet, and stored */
	ck_assert(C.log_facility == 5 && C.websockets_log_level == 255 && C.websockets_headers_size == 4096);
	ck_assert(C.allow_duplicate_messages);
	ck_assert_str_eq(W.msg[0], "t.conf:5: option 'allow_duplicate_messages' is deprecated (as in mosquitto "
				   "2.0, which still honours it, as vigil does)");
	ck_assert(!has_warning(&W, "autosave_on_changes")); /* accepted: nothing waits for an autosave */
	ck_assert(has_warning(&W, "t.conf:7: option 'retry_interval' has no effect"));
	ck_assert(has_warning(&W, "t.conf:8: log_dest dlt is not supported"));
	ck_assert_uint_eq(C.retry_interval, 20);
}
END_TEST

/* Every keyword mosquitto 2.0.11 accepts (from its binary and man page) is known. */
START_TEST(every_mosquitto_keyword_is_known)
{
	static const char *const all[] = {
		"acl_file", "address", "addresses", "allow_anonymous", "allow_duplicate_messages",
		"allow_zero_length_clientid", "auth_opt_x", "auth_plugin", "auth_plugin_deny_special_chars",
		"auto_id_prefix", "autosave_interval", "autosave_on_changes", "bind_address", "bind_interface",
		"bridge_alpn", "bridge_attempt_unsubscribe", "bridge_bind_address", "bridge_cafile", "bridge_capath",
		"bridge_certfile", "bridge_identity", "bridge_insecure", "bridge_keyfile", "bridge_max_packet_size",
		"bridge_outgoing_retain", "bridge_protocol_version", "bridge_psk", "bridge_require_ocsp",
		"bridge_tls_version", "cafile", "capath", "certfile", "check_retain_source", "ciphers",
		"ciphers_tls1.3", "cleansession", "clientid", "clientid_prefixes", "connection",
		"connection_messages", "crlfile", "dhparamfile", "http_dir", "idle_timeout", "include_dir",
		"keepalive_interval", "keyfile", "listener", "local_cleansession", "local_clientid",
		"local_password", "local_username", "log_dest", "log_facility", "log_timestamp",
		"log_timestamp_format", "log_type", "max_connections", "max_inflight_bytes",
		"max_inflight_messages", "max_keepalive", "max_packet_size", "max_qos", "max_queued_bytes",
		"max_queued_messages", "max_topic_alias", "maximum_qos", "memory_limit", "message_size_limit",
		"mount_point", "notification_topic", "notifications", "notifications_local_only", "password",
		"password_file", "per_listener_settings", "persistence", "persistence_file", "persistence_location",
		"persistent_client_expiration", "pid_file", "plugin", "plugin_opt_x", "port", "protocol",
		"psk_file", "psk_hint", "queue_qos0_messages", "remote_clientid", "remote_password",
		"remote_username", "require_certificate", "restart_timeout", "retain_available",
		"retained_persistence", "retry_interval", "round_robin", "set_tcp_nodelay", "socket_domain",
		"start_type", "sys_interval", "threshold", "tls_engine", "tls_engine_kpass_sha1", "tls_keyform",
		"tls_version", "topic", "try_private", "upgrade_outgoing_qos", "use_identity_as_username",
		"use_subject_as_username", "use_username_as_clientid", "user", "username",
		"websockets_headers_size", "websockets_log_level"};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		char text[128];
		config_free(&C);
		snprintf(text, sizeof(text), "listener 1883\n%s x\n", all[i]);
		if (load(text))
			ck_assert_msg(!strstr(E, "unknown configuration option"), "%s: %s", all[i], E);
	}
}
END_TEST

/* ---- cross-option checks ------------------------------------------------------------ */

START_TEST(tls_cross_checks)
{
	LOAD_ERR("listener 8883\ncertfile /c\n", "t.conf:1: listener 8883: certfile is set but keyfile is not");
	config_free(&C);
	LOAD_ERR("listener 8883\nkeyfile /k\n", "t.conf:1: listener 8883: keyfile is set but certfile is not");
	config_free(&C);
	LOAD_ERR("listener 1883\nlistener 8883\ncertfile /c\nkeyfile /k\nrequire_certificate true\n",
		 "t.conf:2: listener 8883: require_certificate needs cafile or capath to verify client certificates");
	config_free(&C);
	LOAD_ERR_PREFIX("listener 8883\ncafile /ca\n",
			"t.conf:1: listener 8883: cafile is set but TLS is not enabled on this listener");
	config_free(&C);
	LOAD_ERR_PREFIX("cafile /ca\n", "default listener (port 1883): cafile is set but TLS is not enabled");
	config_free(&C);
	LOAD_ERR("listener 8084\nprotocol websockets\npsk_hint h\n",
		 "t.conf:1: listener 8084: psk_hint cannot be used with protocol websockets (as mosquitto)");
	config_free(&C);
	LOAD_ERR("listener 8081\nprotocol http_api\npsk_hint h\n",
		 "t.conf:1: listener 8081: psk_hint cannot be used with protocol http_api (HTTPS needs certfile and "
		 "keyfile)");
	config_free(&C);
	LOAD_ERR("listener 0 /s.sock\nprotocol http_api\n",
		 "t.conf:1: listener 0 /s.sock: a Unix socket listener supports plain MQTT only");
	config_free(&C);
	LOAD_OK("listener 8081 127.0.0.1\nprotocol http_api\ncertfile /c\nkeyfile /k\n"); /* HTTPS */
	ck_assert(C.n_listeners == 1 && C.listeners[0].http_api && !C.listeners[0].websockets);
	config_free(&C);
	LOAD_ERR("listener 0 /s.sock\ncertfile /c\nkeyfile /k\n",
		 "t.conf:1: listener 0 /s.sock: a Unix socket listener supports plain MQTT only");
	config_free(&C);
	LOAD_OK("listener 8883\npsk_hint h\nuse_identity_as_username true\n"); /* PSK identity */
	config_free(&C);
	LOAD_OK("listener 8883\ncertfile /c\nkeyfile /k\ncafile /ca\nrequire_certificate true\n"
		"use_identity_as_username true\n");
	ck_assert_int_eq(W.n, 0);
}
END_TEST

/* compat: mosquitto 2.0.11 starts with use_identity_as_username /
 * use_subject_as_username but without require_certificate, and then refuses
 * every client (CONNACK 0x04 / v5 0x86: no certificate is requested). vigil
 * starts too, with a warning that says so (16_auth_paths checks the
 * refusal). */
START_TEST(tls_username_without_require_certificate_warns)
{
	LOAD_OK("listener 8883\ncertfile /c\nkeyfile /k\nuse_subject_as_username true\n");
	ck_assert(C.listeners[0].use_subject_as_username && !C.listeners[0].require_certificate);
	ck_assert_int_eq(W.n, 1);
	ck_assert_msg(has_warning(&W, "t.conf:1: listener 8883: use_subject_as_username without require_certificate "
				      "true: no client certificate is requested, so every client is refused"),
		      "%s", W.msg[0]);
	config_free(&C);
	memset(&W, 0, sizeof(W));
	LOAD_OK("listener 8883\ncertfile /c\nkeyfile /k\nuse_identity_as_username true\n");
	ck_assert_int_eq(W.n, 1);
	ck_assert(has_warning(&W, "t.conf:1: listener 8883: use_identity_as_username without require_certificate"));
	config_free(&C);
	memset(&W, 0, sizeof(W));
	/* both: the identity (CN) wins, as in mosquitto; one warning */
	LOAD_OK("listener 8883\ncertfile /c\nkeyfile /k\nuse_identity_as_username true\nuse_subject_as_username true\n");
	ck_assert_int_eq(W.n, 1);
	config_free(&C);
	memset(&W, 0, sizeof(W));
	/* a PSK listener has no certificate subject */
	LOAD_OK("listener 8883\npsk_hint h\nuse_subject_as_username true\n");
	ck_assert(has_warning(&W, "use_subject_as_username on a psk_hint listener"));
	config_free(&C);
	memset(&W, 0, sizeof(W));
	/* PSK identity: fine without require_certificate */
	LOAD_OK("listener 8883\npsk_hint h\nuse_identity_as_username true\n");
	ck_assert_int_eq(W.n, 0);
	config_free(&C);
	memset(&W, 0, sizeof(W));
	/* still an error without TLS at all (mosquitto-compat.md: TLS options without TLS) */
	LOAD_ERR_PREFIX("listener 1883\nuse_identity_as_username true\n",
			"t.conf:1: listener 1883: use_identity_as_username is set but TLS is not enabled");
}
END_TEST

/* ---- per_listener_settings ------------------------------------------------------------ */

START_TEST(per_listener_settings_false_is_global)
{
	LOAD_OK("listener 1883\npassword_file /pw\nlistener 1884\nallow_anonymous true\nacl_file /acl\n");
	ck_assert_str_eq(C.security.password_file, "/pw");
	ck_assert_str_eq(C.security.acl_file, "/acl");
	ck_assert_int_eq(C.security.allow_anonymous, 1);
	ck_assert_ptr_null(C.listeners[0].security.password_file);
	ck_assert_ptr_eq(config_security(&C, &C.listeners[0]), &C.security);
	ck_assert_ptr_eq(config_security(&C, &C.listeners[1]), &C.security);
}
END_TEST

START_TEST(per_listener_settings_true_is_per_listener)
{
	LOAD_OK("per_listener_settings true\nlistener 1883\npassword_file /pw\nauto_id_prefix x-\n"
		"listener 1884\nallow_anonymous true\nacl_file /acl\nallow_zero_length_clientid false\n");
	ck_assert(C.per_listener_settings);
	const struct security_conf *a = config_security(&C, &C.listeners[0]);
	const struct security_conf *b = config_security(&C, &C.listeners[1]);
	ck_assert_ptr_eq(a, &C.listeners[0].security);
	ck_assert_str_eq(a->password_file, "/pw");
	ck_assert_str_eq(a->auto_id_prefix, "x-");
	ck_assert_int_eq(a->allow_anonymous, 0);
	ck_assert(a->allow_zero_length_clientid);
	ck_assert_ptr_null(a->acl_file);
	ck_assert_int_eq(b->allow_anonymous, 1);
	ck_assert_str_eq(b->acl_file, "/acl");
	ck_assert_str_eq(b->auto_id_prefix, "auto-");
	ck_assert(!b->allow_zero_length_clientid);
	ck_assert_ptr_null(C.security.password_file);
	ck_assert_int_eq(W.n, 0);
}
END_TEST

START_TEST(per_listener_settings_late_warns)
{
	LOAD_OK("listener 1883\npassword_file /pw\nper_listener_settings true\nacl_file /acl\n");
	ck_assert(has_warning(&W, "t.conf:3: per_listener_settings comes after a listener or security option"));
	ck_assert_str_eq(C.security.password_file, "/pw"); /* went global, as in mosquitto */
	ck_assert_str_eq(C.listeners[0].security.acl_file, "/acl");
}
END_TEST

START_TEST(per_listener_security_before_listener_is_default_listener)
{
	LOAD_OK("per_listener_settings true\npassword_file /pw\nlistener 1884\n");
	ck_assert_uint_eq(C.n_listeners, 2); /* password_file starts mosquitto's default listener */
	ck_assert_int_eq(C.listeners[1].port, 1883);
	ck_assert_str_eq(C.listeners[1].security.password_file, "/pw");
}
END_TEST

#include "test_config_files.h"

/* ---- SIGHUP ---------------------------------------------------------------------- */

START_TEST(reload_moves_reloadable_and_reports_the_rest)
{
	LOAD_OK("pid_file /run/a.pid\nmax_inflight_messages 20\npassword_file /pw1\nlog_type error\n"
		"per_listener_settings false\nlistener 1883\nmount_point a/\nlistener 1884\n");
	struct config fresh;
	config_init(&fresh);
	ck_assert_int_eq(config_parse_string(&fresh, "t.conf",
					     "pid_file /run/b.pid\nmax_inflight_messages 5\npassword_file /pw2\n"
					     "log_type all\nallow_anonymous true\nconnect_timeout 4\n"
					     "listener 1883\nmount_point b/\nlistener 1885\n",
					     warn_cb, &W, E, sizeof(E)),
			 0);
	ck_assert_int_eq(config_finish(&fresh, 0, E, sizeof(E)), 0);
	int n = config_reload(&C, &fresh, warn_cb, &W);
	ck_assert_int_eq(n, 5);
	ck_assert_uint_eq(C.max_inflight_messages, 5);
	ck_assert_str_eq(C.security.password_file, "/pw2");
	ck_assert_int_eq(C.security.allow_anonymous, 1);
	ck_assert_uint_eq(C.log_type, LOG_F_ALL);
	ck_assert_uint_eq(C.connect_timeout, 4);
	ck_assert_str_eq(C.pid_file, "/run/a.pid"); /* not reloaded, as mosquitto */
	ck_assert_str_eq(C.listeners[0].mount_point, "a/");
	ck_assert(has_warning(&W, "option 'pid_file' changed; restart vigil to apply it"));
	ck_assert(has_warning(&W, "listener 1883: option 'mount_point' changed; restart vigil to apply it"));
	ck_assert(has_warning(&W, "listener 1884: removed from the configuration"));
	ck_assert(has_warning(&W, "new listener 1885; restart vigil to open it"));
	ck_assert_str_eq(fresh.security.password_file, "/pw1"); /* the old value, freed with fresh */
	config_free(&fresh);
}
END_TEST

START_TEST(reload_per_listener_security)
{
	LOAD_OK("per_listener_settings true\nlistener 1883\npassword_file /a\n");
	struct config fresh;
	config_init(&fresh);
	ck_assert_int_eq(config_parse_string(&fresh, "t.conf", "per_listener_settings true\nlistener 1883\n"
					     "password_file /b\nallow_anonymous true\n", warn_cb, &W, E, sizeof(E)), 0);
	ck_assert_int_eq(config_finish(&fresh, 0, E, sizeof(E)), 0);
	ck_assert_int_eq(config_reload(&C, &fresh, warn_cb, &W), 2);
	ck_assert_str_eq(C.listeners[0].security.password_file, "/b");
	ck_assert_int_eq(C.listeners[0].security.allow_anonymous, 1);
	ck_assert_int_eq(W.n, 0);
	config_free(&fresh);
}
END_TEST

START_TEST(reloadable_query)
{
	ck_assert(config_option_reloadable("password_file"));
	ck_assert(config_option_reloadable("acl_file"));
	ck_assert(config_option_reloadable("max_inflight_messages"));
	ck_assert(config_option_reloadable("log_dest"));
	ck_assert(!config_option_reloadable("listener"));
	ck_assert(!config_option_reloadable("pid_file"));
	ck_assert(!config_option_reloadable("certfile"));
	ck_assert(!config_option_reloadable("auth_opt_x"));
	ck_assert(!config_option_reloadable("nope"));
	ck_assert(!config_option_reloadable(NULL));
}
END_TEST

START_TEST(free_is_idempotent)
{
	config_free(NULL);
	LOAD_OK("listener 1883\ncertfile /c\nkeyfile /k\npassword_file /p\n");
	config_free(&C);
	ck_assert_uint_eq(C.n_listeners, 0);
	ck_assert_ptr_null(C.listeners);
	ck_assert_uint_eq(C.max_inflight_messages, 20);
	config_free(&C);
	/* a failed parse leaves a config that config_free cleans */
	ck_assert_int_eq(load("listener 1883\nmount_point x\nbogus\n"), -1);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *t = tcase_create("parse");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, defaults_are_mosquittos);
	tcase_add_test(t, no_listener_is_local_only_mode);
	tcase_add_test(t, cmdline_port_stays_local_only);
	tcase_add_test(t, cmdline_port_ignored_with_listeners);
	tcase_add_test(t, listener_option_before_listener_starts_default_listener);
	tcase_add_test(t, port_and_bind_address_are_the_default_listener);
	tcase_add_test(t, some_options_do_not_start_default_listener);
	tcase_add_test(t, port_after_a_listener_is_still_the_default_listener);
	tcase_add_test(t, options_lost_with_the_default_listener_warn);
	tcase_add_test(t, every_global_option);
	tcase_add_test(t, every_listener_option);
	tcase_add_test(t, not_yet_options_at_default_values_are_quiet);
	tcase_add_test(t, unix_socket_listener);
	tcase_add_test(t, expiration_units);
	tcase_add_test(t, negative_values_clamp_as_mosquitto);
	tcase_add_test(t, log_dest_and_type_edge_cases);
	tcase_add_test(t, verbose_and_daemon);
	tcase_add_test(t, syntax_comments_blanks_whitespace);
	tcase_add_test(t, bool_spellings);
	tcase_add_test(t, extra_words_warn);
	tcase_add_test(t, unknown_option);
	tcase_add_loop_test(t, bad_values, 0, sizeof(bad) / sizeof(bad[0]));
	bridge_tcase(t);
	tcase_add_test(t, bridges_plugins_and_prefixes_are_errors);
	tcase_add_test(t, unsupported_options_warn);
	tcase_add_test(t, every_mosquitto_keyword_is_known);
	tcase_add_test(t, tls_cross_checks);
	tcase_add_test(t, tls_username_without_require_certificate_warns);
	tcase_add_test(t, per_listener_settings_false_is_global);
	tcase_add_test(t, per_listener_settings_true_is_per_listener);
	tcase_add_test(t, per_listener_settings_late_warns);
	tcase_add_test(t, per_listener_security_before_listener_is_default_listener);
	tcase_add_test(t, reload_moves_reloadable_and_reports_the_rest);
	tcase_add_test(t, reload_per_listener_security);
	tcase_add_test(t, reloadable_query);
	tcase_add_test(t, free_is_idempotent);
	suite_add_tcase(s, t);
	TCase *f = tcase_create("files");
	tcase_add_checked_fixture(f, setup_dir, teardown_dir);
	tcase_add_test(f, include_dir_order_is_mosquittos);
	tcase_add_test(f, include_dir_errors_name_the_included_file);
	tcase_add_test(f, include_dir_nested_and_missing);
	tcase_add_test(f, included_file_starts_at_default_listener);
	tcase_add_test(f, real_world_tls_websockets_password_acl);
	tcase_add_test(f, real_world_minimal);
	tcase_add_test(f, real_world_docker);
	suite_add_tcase(s, f);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
