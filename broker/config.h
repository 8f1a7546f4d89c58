/*
 * broker/config.h — vigil's configuration: mosquitto.conf syntax, parsed
 * through a keyword table (see config.c). Every option mosquitto 2.0.11 knows
 * is either implemented (parsed into a field below), accepted with a warning
 * naming it, or refused at start-up when ignoring it would lose messages or
 * weaken security (bridges, plugins, clientid_prefixes, TLS engines); the
 * list is in mosquitto-compat.md. Nothing is silently ignored. An unknown
 * keyword or a bad value stops start-up with "file:line: reason".
 *
 * Global options live in struct config; per-listener ones in struct
 * listener_conf. With per_listener_settings false (the default) the
 * security options (allow_anonymous, password_file, acl_file, psk_file,
 * allow_zero_length_clientid, auto_id_prefix) given in any section apply to
 * all listeners; with true they apply to the listener being configured, as
 * mosquitto does. Use config_security() rather than choosing yourself.
 */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Security options: global, or per listener with per_listener_settings. */
struct security_conf {
	int allow_anonymous;      /* -1 unset; config_finish resolves it: false when any listener is
				   * configured, true in local-only mode (as mosquitto 2.0) */
	char *password_file;
	char *acl_file;
	char *psk_file;
	bool allow_zero_length_clientid; /* default true */
	char *auto_id_prefix;     /* default "auto-" (filled in by config_finish when unset) */
};

struct listener_conf {
	int port;                 /* 1..65535; 0 with unix_path */
	char *bind_address;       /* NULL = all addresses */
	char *bind_interface;     /* SO_BINDTODEVICE, or NULL */
	char *unix_path;          /* "listener 0 /path/sock" */
	int family;               /* socket_domain: AF_UNSPEC, AF_INET, AF_INET6 */
	bool websockets;          /* protocol websockets */
	bool http_api;            /* protocol http_api (vigil): the HTTP API, not MQTT (broker/api/) */
	char *http_dir;
	char *mount_point;
	int max_connections;      /* -1 unlimited */
	int max_qos;              /* 0..2, default 2 */
	int max_topic_alias;      /* default 10 */
	bool use_username_as_clientid;
	/* TLS: enabled when certfile+keyfile (certificates) or psk_hint (PSK) is set */
	char *cafile, *capath, *certfile, *keyfile, *tls_version, *ciphers, *ciphers_tls13, *crlfile,
		*dhparamfile, *psk_hint;
	bool require_certificate, use_identity_as_username, use_subject_as_username;
	/* Liveness (vigil): TCP keepalive for the accepted sockets, 0 = off */
	int tcp_keepalive_idle, tcp_keepalive_interval, tcp_keepalive_count;
	unsigned tcp_user_timeout_ms; /* default 0 = kernel default; see compat */
	/* Used only when per_listener_settings is true. */
	struct security_conf security;
	/* Where the listener line was, for error messages (NULL/0 for the
	 * default and local-only listeners). */
	char *file;
	int line;
	/* Added by config: a failure to bind this listener is logged, not fatal
	 * (local-only mode's ::1 listener on a host without IPv6, as mosquitto). */
	bool bind_optional;
};

enum log_flags {
	LOG_F_ERROR = 1 << 0,
	LOG_F_WARNING = 1 << 1,
	LOG_F_NOTICE = 1 << 2,
	LOG_F_INFORMATION = 1 << 3,
	LOG_F_DEBUG = 1 << 4,
	LOG_F_SUBSCRIBE = 1 << 5,
	LOG_F_UNSUBSCRIBE = 1 << 6,
	LOG_F_WEBSOCKETS = 1 << 7,
	LOG_F_ALL = 0xff,
};

enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 };

enum log_dest_flags {
	LOG_D_STDERR = 1 << 0,
	LOG_D_STDOUT = 1 << 1,
	LOG_D_FILE = 1 << 2,
	LOG_D_SYSLOG = 1 << 3,
	LOG_D_TOPIC = 1 << 4,
	LOG_D_NONE = 1 << 5,      /* "log_dest none" given (alone: no logging at all) */
};

/* ---- bridges (mosquitto.conf(5) "Configuring Bridges"; parsed in config_bridge.h) ---- */

enum bridge_dir { BRIDGE_OUT = 0, BRIDGE_IN = 1, BRIDGE_BOTH = 2 };
enum bridge_start { BRIDGE_START_AUTOMATIC = 0, BRIDGE_START_LAZY = 1, BRIDGE_START_ONCE = 2 };

/* One "topic PATTERN [dir [qos [local-prefix remote-prefix]]]" line. */
struct bridge_topic {
	char *pattern;                     /* "" allowed when a prefix is given */
	char *local_prefix, *remote_prefix; /* NULL = none ("" in the file) */
	char *local_topic, *remote_topic;  /* prefix + pattern (filled by the parser) */
	int dir;                           /* enum bridge_dir, default out */
	int qos;                           /* default 0 */
};

struct bridge_addr {
	char *host;
	int port; /* default 1883 */
};

struct bridge_conf {
	char *name;                 /* "connection NAME" */
	char *file;                 /* where the connection line was */
	int line;
	struct bridge_addr *addrs;
	size_t n_addrs;
	bool round_robin;           /* default false: go back to the first address */
	struct bridge_topic *topics;
	size_t n_topics;
	int protocol;               /* 3 (mqttv31), 4 (mqttv311, default), 5 (mqttv50) */
	bool try_private;           /* default true */
	bool cleansession;          /* default false */
	int local_cleansession;     /* -1 until parsed = unset = false (see config_bridge.h) */
	char *local_clientid;       /* default "local." + remote_clientid */
	char *remote_clientid;      /* default "HOSTNAME.NAME" (config_finish) */
	char *remote_username, *remote_password;
	char *local_username, *local_password;
	bool notifications;         /* default true */
	bool notifications_local_only;
	char *notification_topic;   /* default "$SYS/broker/connection/<remote_clientid>/state" */
	unsigned keepalive;         /* seconds, default 60; 1..65535 (compat: mosquitto raises < 5 to 5) */
	unsigned restart_base;      /* seconds: constant, or backoff base when restart_cap > 0 */
	unsigned restart_cap;       /* 0 = constant restart_base; default 5 / 30 (backoff) */
	int start_type;             /* enum bridge_start */
	unsigned idle_timeout;      /* default 60 (lazy only) */
	unsigned threshold;         /* default 10 (lazy only) */
	bool attempt_unsubscribe;   /* default true */
	bool outgoing_retain;       /* default true */
	uint32_t max_packet_size;   /* 0 = none (v5 CONNECT Maximum Packet Size) */
	int tcp_keepalive_idle, tcp_keepalive_interval, tcp_keepalive_count; /* 0 = off */
	int tcp_user_timeout_ms;    /* -1 = kernel default */
	/* TLS: on when cafile or capath is set (as mosquitto) */
	char *cafile, *capath, *certfile, *keyfile, *tls_version, *alpn;
	bool insecure;              /* bridge_insecure: no check of the server's name */
	bool require_ocsp;          /* bridge_require_ocsp: a stapled OCSP "good" is required */
	char *psk_identity, *psk;   /* bridge_identity / bridge_psk (hex): TLS-PSK, no CA */
	char *bind_address;         /* bridge_bind_address: local address of the outbound socket */
};

#define CONFIG_CMD_PORTS 10 /* -p at most this many times (mosquitto CMD_PORT_LIMIT) */

struct config {
	/* listeners, in file order; config_finish appends mosquitto's default
	 * listener (from "port", "bind_address" or listener options given before
	 * the first "listener" line) after them, or the two local-only ones. */
	struct listener_conf *listeners;
	size_t n_listeners;

	bool per_listener_settings;
	struct security_conf security; /* global */

	/* limits */
	unsigned max_keepalive;      /* default 65535 */
	uint32_t max_packet_size;    /* 0 = none */
	uint32_t message_size_limit; /* 0 = none */
	unsigned max_inflight_messages; /* default 20; 0 = unlimited (65535) */
	uint64_t max_inflight_bytes; /* 0 = none */
	unsigned max_queued_messages;   /* default 1000; 0 = none */
	uint64_t max_queued_bytes;      /* 0 = none */
	bool queue_qos0_messages;
	bool retain_available;       /* default true */
	int64_t persistent_client_expiration; /* seconds, -1 = never */
	int max_connections;         /* unused, always -1: max_connections is per listener in mosquitto 2.0 */
	bool set_tcp_nodelay;        /* default true (mosquitto: false; see compat) */
	bool upgrade_outgoing_qos;
	bool check_retain_source;    /* default true */
	unsigned connect_timeout;    /* seconds before CONNECT must arrive; default 10 */
	unsigned sys_interval;       /* $SYS period in seconds; default 10; 0 off */
	uint64_t memory_limit;       /* bytes, 0 = none (mem.c) */
	bool allow_duplicate_messages; /* v3.x: one copy per matching subscription (default false) */
	int websockets_log_level;    /* libwebsockets log level bitmask; 0 = none */
	unsigned websockets_headers_size; /* libwebsockets HTTP header buffer; 0 = lws's default */
	unsigned retry_interval;     /* accepted for compatibility, no effect (as mosquitto 2.0) */

	/* process */
	char *pid_file;
	char *user;                  /* default "mosquitto" (used only when started as root) */
	bool daemon;                 /* -d (not a config-file option in mosquitto) */

	/* persistence (broker/store/) */
	bool persistence;
	char *persistence_file, *persistence_location; /* file NULL: the store's default, vigil.db */
	bool persistence_fsync;      /* vigil: fsync every commit (synchronous=FULL) */
	unsigned autosave_interval;  /* default 1800; accepted, nothing waits for it */
	bool autosave_on_changes;    /* accepted, nothing waits for it */

	/* logging */
	unsigned log_dest;           /* LOG_D_*; default stderr (none with -d) */
	char *log_file;
	unsigned log_type;           /* LOG_F_*; default error|warning|notice|information */
	bool log_timestamp;          /* default true */
	char *log_timestamp_format;
	bool connection_messages;    /* default true */
	int log_facility;            /* syslog: -1 = daemon (default), 0..7 = local0..local7 */
	int log_format;              /* vigil: LOG_FORMAT_TEXT (default, mosquitto's lines) or LOG_FORMAT_JSON */
	bool verbose;                /* -v: config_finish sets log_type to all (log_dest unchanged, as mosquitto) */

	/* Added by config. Options given before the first "listener" line of a
	 * file: mosquitto's default listener. config_finish moves it into
	 * listeners[] when it is used, else frees it. */
	struct listener_conf default_listener;
	/* Set by config_finish: no listener was configured, so vigil listens on
	 * 127.0.0.1 and ::1 only, with anonymous access (mosquitto 2.0). */
	bool local_only;
	/* -p given more than once (main.c): the ports after the first, which
	 * local only mode also listens on (mosquitto: "may be specified multiple
	 * times"; ignored when the file has listeners, as mosquitto ignores -p). */
	uint16_t more_ports[CONFIG_CMD_PORTS - 1];
	size_t n_more_ports;

	/* bridges, in file order (config_bridge.h) */
	struct bridge_conf *bridges;
	size_t n_bridges;

	/* cluster (broker/cluster/, a vigil extension): off without nats_url */
	struct cluster_conf {
		char *nats_url;        /* cluster_nats_url URL[,URL...] */
		char *node_id;         /* cluster_node_id, required with nats_url */
		char *name;            /* cluster_name; NULL: "vigil" */
		char *creds, *cafile, *certfile, *keyfile; /* cluster_nats_* */
		unsigned node_timeout; /* cluster_node_timeout, seconds; default 3 */
		unsigned replicas;     /* cluster_replicas: JetStream replicas of the buckets; default 1 */
		/* cross-node QoS 1/2 (cluster/xqos.c) */
		unsigned ack_hold;      /* cluster_ack_hold, seconds an ack waits for JetStream; default 10 */
		unsigned replay_window; /* cluster_replay_window, seconds the stream keeps; default 120 */
		unsigned replay_hold;   /* cluster_replay_hold, seconds live messages wait for a replay; default 2 */
		uint64_t replay_max_bytes; /* cluster_replay_max_bytes, the stream's size bound; default 256 MiB */
	} cluster;
};

/* Defaults as mosquitto 2.0's (vigil's where mosquitto-compat.md says so). */
void config_init(struct config *c);
/* Frees every string and listener; leaves c as config_init would. NULL ok. */
void config_free(struct config *c);

/* Warnings: known mosquitto options vigil ignores, deprecated forms, and
 * risky constructs, each as "file:line: ...". warn may be NULL. */
typedef void (*config_warn_fn)(const char *msg, void *u);

/*
 * Parse a file (following include_dir). Appends listeners, sets options.
 * Returns 0, or -1 with err set to "file:line: reason" (or "file: reason"
 * when the file cannot be read).
 */
int config_parse_file(struct config *c, const char *path, void (*warn)(const char *msg, void *u), void *u,
		      char *err, size_t errlen);
/* Same for a string (tests). `name` is used in messages. */
int config_parse_string(struct config *c, const char *name, const char *text,
			void (*warn)(const char *msg, void *u), void *u, char *err, size_t errlen);
/*
 * After parsing and command-line overrides (daemon, verbose): add
 * mosquitto's default listener when options were given for it; when no
 * listener results, enter local-only mode: listeners on 127.0.0.1 and ::1 at
 * cmdline_port (or 1883 when cmdline_port is 0) with allow_anonymous true.
 * As mosquitto 2.0.11, -p is ignored when the file configures a listener.
 * Resolve allow_anonymous and the other unset defaults; check cross-option
 * rules (certfile without keyfile, require_certificate without cafile/capath,
 * TLS options on a listener without TLS, ...). Returns 0 or -1 with err.
 */
int config_finish(struct config *c, int cmdline_port, char *err, size_t errlen);
/* The same, reporting risky listener setups through warn (e.g.
 * use_identity_as_username without require_certificate: every client is
 * refused, as in mosquitto). */
int config_finish_warn(struct config *c, int cmdline_port, config_warn_fn warn, void *u, char *err, size_t errlen);
/* The security options that apply to listener l. */
const struct security_conf *config_security(const struct config *c, const struct listener_conf *l);

/*
 * SIGHUP. `fresh` is a newly parsed and finished configuration. The options
 * mosquitto reloads (security options and the password/ACL/PSK file paths,
 * limits, logging, persistence settings, connect_timeout) are moved from
 * fresh into live; per-listener security options are moved to the live
 * listener with the same port, address and socket path. Every option that
 * differs but cannot be reloaded (listeners, TLS paths, user, pid_file, ...)
 * is reported through warn ("option 'X' changed; restart vigil to apply it").
 * Afterwards the caller frees fresh with config_free (it holds the old
 * values). The caller then reloads the password/ACL files and TLS
 * certificates itself. Returns the number of options changed in live.
 */
int config_reload(struct config *live, struct config *fresh, void (*warn)(const char *msg, void *u), void *u);
/* Is this configuration keyword reloaded on SIGHUP? false for unknown ones. */
bool config_option_reloadable(const char *name);

#endif
