/*
 * broker/config.h — vigil's configuration: mosquitto.conf syntax, parsed
 * through a keyword table (see config.c). Every option mosquitto 2.0 knows is
 * either implemented, or accepted with a warning naming it (listed in
 * mosquitto-compat.md), never silently ignored. An unknown keyword or a bad
 * value stops start-up with "file:line: reason".
 *
 * Global options live in struct config; per-listener ones in struct
 * listener_conf. With per_listener_settings false (the default) the
 * security options (allow_anonymous, password_file, acl_file, ...) given in
 * any section apply to all listeners, as mosquitto does.
 */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Security options: global, or per listener with per_listener_settings. */
struct security_conf {
	int allow_anonymous;      /* -1 unset (means: false when any listener is configured, as mosquitto 2.0) */
	char *password_file;
	char *acl_file;
	char *psk_file;
	bool allow_zero_length_clientid;
	char *auto_id_prefix;     /* default "auto-" */
};

struct listener_conf {
	int port;                 /* 0 with unix_path */
	char *bind_address;       /* NULL = all addresses */
	char *bind_interface;     /* SO_BINDTODEVICE, or NULL */
	char *unix_path;          /* "listener 0 /path/sock" */
	int family;               /* socket_domain: AF_UNSPEC, AF_INET, AF_INET6 */
	bool websockets;          /* protocol websockets */
	char *http_dir;
	char *mount_point;
	int max_connections;      /* -1 unlimited */
	int max_qos;              /* 0..2, default 2 */
	int max_topic_alias;      /* default 10 */
	bool use_username_as_clientid;
	/* TLS */
	char *cafile, *capath, *certfile, *keyfile, *tls_version, *ciphers, *ciphers_tls13, *crlfile,
		*dhparamfile, *psk_hint;
	bool require_certificate, use_identity_as_username, use_subject_as_username;
	/* Liveness (vigil): TCP keepalive for the accepted sockets, 0 = off */
	int tcp_keepalive_idle, tcp_keepalive_interval, tcp_keepalive_count;
	unsigned tcp_user_timeout_ms; /* default 0 = kernel default; see compat */
	/* Used only when per_listener_settings is true. */
	struct security_conf security;
	/* Where the listener line was, for error messages. */
	char *file;
	int line;
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

enum log_dest_flags {
	LOG_D_STDERR = 1 << 0,
	LOG_D_STDOUT = 1 << 1,
	LOG_D_FILE = 1 << 2,
	LOG_D_SYSLOG = 1 << 3,
	LOG_D_TOPIC = 1 << 4,
	LOG_D_NONE = 1 << 5,
};

struct config {
	/* listeners, in file order; listeners[0] may be the default one from -p
	 * or "port". */
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
	int max_connections;         /* global default for listeners, -1 */
	bool set_tcp_nodelay;        /* default true */
	bool upgrade_outgoing_qos;
	bool check_retain_source;
	unsigned connect_timeout;    /* seconds before CONNECT must arrive; default 10 */
	unsigned sys_interval;       /* $SYS period in seconds; default 10; 0 off */
	uint64_t memory_limit;       /* bytes, 0 = none */
	unsigned retry_interval;     /* accepted for compatibility (deprecated) */

	/* process */
	char *pid_file;
	char *user;                  /* default "mosquitto" when started as root */
	bool daemon;

	/* persistence (a later issue implements the store) */
	bool persistence;
	char *persistence_file, *persistence_location;
	unsigned autosave_interval;

	/* logging */
	unsigned log_dest;           /* LOG_D_* */
	char *log_file;
	unsigned log_type;           /* LOG_F_* */
	bool log_timestamp;          /* default true */
	char *log_timestamp_format;
	bool connection_messages;    /* default true */
	bool verbose;                /* -v: log_type all, to stderr */
};

/* Defaults as mosquitto 2.0's. */
void config_init(struct config *c);
void config_free(struct config *c);

/*
 * Parse a file (following include_dir). Appends listeners, sets options.
 * Returns 0, or -1 with err set to "file:line: reason". Warnings (known
 * mosquitto options vigil does not implement) go through warn().
 */
int config_parse_file(struct config *c, const char *path, void (*warn)(const char *msg, void *u), void *u,
		      char *err, size_t errlen);
/* Same for a string (tests). `name` is used in messages. */
int config_parse_string(struct config *c, const char *name, const char *text,
			void (*warn)(const char *msg, void *u), void *u, char *err, size_t errlen);
/* After parsing and command-line overrides: add the default listener when
 * none is configured (localhost:1883, or all addresses on -p PORT as
 * mosquitto), resolve allow_anonymous, check cross-option rules (e.g. TLS
 * certfile without keyfile). Returns 0 or -1 with err. */
int config_finish(struct config *c, int cmdline_port, char *err, size_t errlen);
/* The security options that apply to listener l. */
const struct security_conf *config_security(const struct config *c, const struct listener_conf *l);

#endif
