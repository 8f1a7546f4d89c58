/*
 * broker/store/mosqdb.h — a reader for mosquitto's persistence file
 * (mosquitto.db), db format versions 2 to 6 (mosquitto 1.x wrote 2-5,
 * mosquitto 2.0 writes 6), as a visitor.
 *
 * The reader knows nothing of vigil's broker: plain structs, views into the
 * file image, no clock. mosqdb_import.c turns the records into vigil state.
 *
 * Order of the callbacks, whatever the order of the chunks in the file:
 * info once, then every retained message, every client (session), every
 * subscription, every client message. The whole file is validated before the
 * first callback, so a corrupt file never yields a partial import.
 *
 * Views (struct mosqdb_bytes) point into the reader's copy of the file and
 * are valid only during the callback; strings are NOT NUL-terminated.
 */
#ifndef VIGIL_MOSQDB_H
#define VIGIL_MOSQDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Chunk types (mosquitto's DB_CHUNK_*). */
enum mosqdb_chunk {
	MOSQDB_CHUNK_CFG = 1,
	MOSQDB_CHUNK_MSG_STORE = 2,
	MOSQDB_CHUNK_CLIENT_MSG = 3,
	MOSQDB_CHUNK_RETAIN = 4,
	MOSQDB_CHUNK_SUB = 5,
	MOSQDB_CHUNK_CLIENT = 6,
};

/* mosquitto's enum mosquitto_msg_state, as stored in a client message. */
enum mosqdb_state {
	MOSQDB_MS_INVALID = 0,
	MOSQDB_MS_PUBLISH_QOS0 = 1,
	MOSQDB_MS_PUBLISH_QOS1 = 2,
	MOSQDB_MS_WAIT_FOR_PUBACK = 3,
	MOSQDB_MS_PUBLISH_QOS2 = 4,
	MOSQDB_MS_WAIT_FOR_PUBREC = 5,
	MOSQDB_MS_RESEND_PUBREL = 6,
	MOSQDB_MS_WAIT_FOR_PUBREL = 7,
	MOSQDB_MS_RESEND_PUBCOMP = 8,
	MOSQDB_MS_WAIT_FOR_PUBCOMP = 9,
	MOSQDB_MS_SEND_PUBREC = 10,
	MOSQDB_MS_QUEUED = 11,
};

/* Direction of a client message: in = received from the client (an inbound
 * QoS 2 message waiting for PUBREL), out = to be sent to the client. */
enum mosqdb_dir { MOSQDB_DIR_IN = 0, MOSQDB_DIR_OUT = 1 };

/* Subscription option bits as mosquitto stores them (retain handling and
 * shared subscriptions are not saved by mosquitto). */
#define MOSQDB_SUB_NO_LOCAL 0x04
#define MOSQDB_SUB_RETAIN_AS_PUBLISHED 0x08

enum mosqdb_rc {
	MOSQDB_OK = 0,
	MOSQDB_EIO = -1,      /* cannot open or read the file */
	MOSQDB_EFORMAT = -2,  /* not a mosquitto.db, or a version it cannot be */
	MOSQDB_ECORRUPT = -3, /* truncated or inconsistent: err names the offset */
	MOSQDB_ENOMEM = -4,
	MOSQDB_ESTOP = -5,    /* a callback returned non-zero */
};

struct mosqdb_bytes {
	const uint8_t *p; /* NULL when len == 0 */
	size_t len;
};

/* Counts over the whole file, known before the first record callback. */
struct mosqdb_info {
	uint32_t version;      /* db format version (6 for mosquitto 2.0) */
	uint64_t last_db_id;   /* from the CFG chunk, 0 without one */
	bool shutdown;         /* CFG: written at shutdown (not an autosave) */
	size_t n_msgs, n_retained, n_clients, n_subs, n_client_msgs;
	size_t n_dangling;     /* retain / client message chunks whose message is absent (mosquitto: expired) */
	size_t n_empty;        /* client / sub / client message chunks without a client id (mosquitto skips them) */
	size_t n_unknown;      /* chunks of unknown type, skipped (as mosquitto) */
};

/* A stored message (DB_CHUNK_MSG_STORE). */
struct mosqdb_msg {
	uint64_t store_id;
	int64_t expiry_time;   /* Unix time (s) the message expires; 0 = never */
	uint16_t source_mid;   /* packet id it arrived with */
	uint16_t source_port;  /* listener port it arrived on, 0 = none (v3+) */
	uint8_t qos;           /* as published */
	bool retain;           /* as published (mosquitto clears it for $SYS) */
	struct mosqdb_bytes topic;
	struct mosqdb_bytes payload;
	struct mosqdb_bytes source_id;       /* publisher's client id, may be empty */
	struct mosqdb_bytes source_username; /* publisher's user name, may be empty (v4+) */
	struct mosqdb_bytes props;           /* v5 property block without its length prefix;
						* validated for PUBLISH; Message Expiry is not in it */
};

/* A session (DB_CHUNK_CLIENT). mosquitto saves only sessions whose last
 * CONNECT had Clean Start / Clean Session 0. */
struct mosqdb_client {
	struct mosqdb_bytes id;
	struct mosqdb_bytes username;   /* empty: none (or not trusted, below) */
	/* mosquitto 2.0 writes, for a client without a user name, the previous
	 * client's user name (and garbage after it). The reader recognises the
	 * pattern; username is then empty and username_suspect true. */
	bool username_suspect;
	int64_t session_expiry_time;    /* Unix time (s) the session expires; 0 = not counting
					 * (connected when saved, or never expires): count the
					 * interval from the restart */
	uint32_t session_expiry_interval; /* s; UINT32_MAX = never (v2-v4 files: always) */
	int64_t disconnect_time;        /* v3/v4 files: when it was last seen (Unix s); 0 otherwise */
	uint16_t last_mid;              /* last packet id used towards the client */
	uint16_t listener_port;         /* v6; 0 = unknown */
};

/* A subscription (DB_CHUNK_SUB). */
struct mosqdb_sub {
	struct mosqdb_bytes client_id;
	struct mosqdb_bytes filter;
	uint8_t qos;
	uint8_t options;     /* MOSQDB_SUB_* bits */
	uint32_t identifier; /* v5 Subscription Identifier, 0 = none */
};

/* A message on its way to or from a session (DB_CHUNK_CLIENT_MSG), with its
 * stored message resolved. */
struct mosqdb_client_msg {
	struct mosqdb_bytes client_id;
	const struct mosqdb_msg *msg;
	uint16_t mid;       /* packet id */
	uint8_t qos;        /* effective QoS towards / from the client */
	bool retain;        /* RETAIN flag to send */
	bool dup;           /* sent at least once */
	uint8_t direction;  /* enum mosqdb_dir */
	uint8_t state;      /* enum mosqdb_state */
	struct mosqdb_bytes props; /* v5 property block (Subscription Identifiers) without length prefix */
};

/* Any callback may be NULL. A non-zero return stops the walk (MOSQDB_ESTOP). */
struct mosqdb_visitor {
	int (*info)(void *user, const struct mosqdb_info *info);
	int (*retained)(void *user, const struct mosqdb_msg *m);
	int (*client)(void *user, const struct mosqdb_client *c);
	int (*sub)(void *user, const struct mosqdb_sub *s);
	int (*client_msg)(void *user, const struct mosqdb_client_msg *cm);
};

/*
 * Read the file at path and walk it with v. Returns MOSQDB_OK or a negative
 * enum mosqdb_rc with a message in err naming the file and, for a corrupt
 * file, the byte offset. The file is opened read-only and never changed.
 */
int mosqdb_read(const char *path, const struct mosqdb_visitor *v, void *user, char *err, size_t errlen);

/* The same on an image in memory (tests, fuzzing). err names no file. */
int mosqdb_parse(const uint8_t *buf, size_t len, const struct mosqdb_visitor *v, void *user, char *err,
		 size_t errlen);

/* 1 if the file at path starts with mosquitto.db's magic, 0 if it does not
 * exist or does not, -1 (errno set) if it cannot be read. */
int mosqdb_probe(const char *path);

#endif
