/*
 * broker/cluster/csrecord.c — persistent sessions' records in the cluster,
 * and the little binary encoding the session hand-over uses.
 *
 * The node that owns a persistent session (expiry > 0, not a bridge's)
 * keeps its record in the JetStream key-value bucket vigil_<name>_sess
 * under "<instance>.<client id token>": protocol level, Session Expiry
 * Interval, when it expires (wall clock, 0 while connected), user name,
 * listener and every subscription with its options and identifier, then
 * a cursor saying which routed messages it already has (cadopt.c). The
 * record is rewritten when the session connects, subscribes, unsubscribes
 * or disconnects (and, connected, at most every second while its
 * deliveries change: cadopt.c), and deleted (an empty value) when it ends.
 * When a node dies, the node that wins its claim (nodes.c, link.c) takes
 * its records and adopts the sessions: they resume here with their
 * subscriptions and, replayed from the msgs stream, the messages the dead
 * node had queued or in flight for them (cadopt.c), so they queue what is
 * published from then on, expire here, and answer the next CONNECT for
 * them anywhere in the cluster (csession.c).
 * Deliberately not here: the replay (cadopt.c); the hand-over itself.
 * Trade-off: records are published like the wills (core NATS publish to
 * the bucket's subject, no JetStream acknowledgement awaited), so SUBACK
 * and CONNACK do not wait for them: a node that dies within milliseconds
 * of a change may leave the previous record (README "Cluster").
 * Invariant: s->cluster_rec is true exactly while a record of s may be in
 * the bucket under this node's current instance.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"
#include "restore.h"

/* ---- encoding ---------------------------------------------------------------- */

void csrecord_put(struct cl_wbuf *w, const void *d, size_t n)
{
	if (w->err)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap < w->len + n)
			cap *= 2;
		uint8_t *p = realloc(w->p, cap);
		if (!p) {
			w->err = true;
			return;
		}
		w->p = p;
		w->cap = cap;
	}
	if (n)
		memcpy(w->p + w->len, d, n);
	w->len += n;
}

void csrecord_le(struct cl_wbuf *w, uint64_t v, int bytes)
{
	uint8_t b[8];
	for (int i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	csrecord_put(w, b, (size_t)bytes);
}

void csrecord_str(struct cl_wbuf *w, const char *s, size_t n)
{
	if (!s) {
		csrecord_le(w, 0xFFFFFFFFu, 4);
		return;
	}
	csrecord_le(w, n, 4);
	csrecord_put(w, s, n);
}

uint64_t csrecord_get(struct cl_rbuf *r, int bytes)
{
	const uint8_t *p = csrecord_bytes(r, (size_t)bytes);
	uint64_t v = 0;
	for (int i = 0; p && i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

const uint8_t *csrecord_bytes(struct cl_rbuf *r, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

char *csrecord_getstr(struct cl_rbuf *r, bool *absent)
{
	uint32_t n = (uint32_t)csrecord_get(r, 4);
	*absent = n == 0xFFFFFFFFu;
	if (*absent || r->err)
		return NULL;
	const uint8_t *p = csrecord_bytes(r, n);
	char *s = p ? malloc((size_t)n + 1) : NULL;
	if (!s) {
		r->err = true;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

/* u8 format (1, or 2: u64 from wall ms follows at once, where the link
 * thread finds it), u8 level, u32 expiry, u64 expires (wall ms, 0: from
 * now), str id, str user, u16 listener (0xFFFF: unknown), u32 n, n x (str
 * filter, u8 options, u32 sub id); format 2: the cursor (cadopt.c) to the
 * end. */
void csrecord_encode(struct cluster *cl, struct session *s, struct cl_wbuf *w, bool cursor)
{
	struct broker *b = cl->b;
	uint64_t expires = !s->client && wheel_armed(&s->expiry_timer) ? store_mono_to_wall(b, s->expiry_timer.deadline) : 0;
	size_t at = w->len;
	csrecord_le(w, cursor ? 2 : 1, 1);
	if (cursor)
		csrecord_le(w, 0, 8); /* from: filled in below */
	csrecord_le(w, s->version, 1);
	csrecord_le(w, s->expiry, 4);
	csrecord_le(w, expires, 8);
	csrecord_str(w, s->id, strlen(s->id));
	csrecord_str(w, s->username, s->username ? strlen(s->username) : 0);
	uint64_t li = s->listener && b->n_listeners ? (uint64_t)(s->listener - b->listeners) : 0xFFFF;
	csrecord_le(w, li < b->n_listeners ? li : 0xFFFF, 2);
	csrecord_le(w, s->n_subs, 4);
	for (uint32_t i = 0; i < s->n_subs; i++) {
		csrecord_str(w, s->subs[i].filter, strlen(s->subs[i].filter));
		csrecord_le(w, s->subs[i].options, 1);
		csrecord_le(w, s->subs[i].sub_id, 4);
	}
	if (!cursor)
		return;
	uint64_t from = cadopt_cursor(cl, s, w);
	for (int i = 0; !w->err && i < 8; i++)
		w->p[at + 1 + i] = (uint8_t)(from >> (8 * i));
}

void csrecord_meta_free(struct cl_meta *m)
{
	for (uint32_t i = 0; m->subs && i < m->n_subs; i++)
		free(m->subs[i].filter);
	free(m->subs);
	free(m->id);
	free(m->username);
	free(m->cursor);
	memset(m, 0, sizeof(*m));
}

int csrecord_decode(struct cl_rbuf *r, struct cl_meta *m)
{
	bool absent;
	memset(m, 0, sizeof(*m));
	m->format = (uint8_t)csrecord_get(r, 1);
	if (m->format != 1 && m->format != 2)
		return -1;
	if (m->format == 2)
		m->from_wall = csrecord_get(r, 8);
	m->version = (uint8_t)csrecord_get(r, 1);
	m->expiry = (uint32_t)csrecord_get(r, 4);
	m->expires_wall = csrecord_get(r, 8);
	m->id = csrecord_getstr(r, &absent);
	m->username = csrecord_getstr(r, &absent);
	uint64_t li = csrecord_get(r, 2);
	m->listener = li == 0xFFFF ? -1 : (int)li;
	uint32_t n = (uint32_t)csrecord_get(r, 4);
	if (r->err || !m->id || n > (r->len - r->off) / 9)
		goto bad;
	m->subs = calloc(n ? n : 1, sizeof(*m->subs));
	if (!m->subs)
		goto bad;
	for (; m->n_subs < n; m->n_subs++) {
		struct cl_msub *x = &m->subs[m->n_subs];
		x->filter = csrecord_getstr(r, &absent);
		x->options = (uint8_t)csrecord_get(r, 1);
		x->sub_id = (uint32_t)csrecord_get(r, 4);
		if (!x->filter || r->err)
			goto bad;
	}
	if (m->format == 2) {
		m->cursor_len = r->len - r->off;
		if (!(m->cursor = malloc(m->cursor_len ? m->cursor_len : 1)))
			goto bad;
		memcpy(m->cursor, r->p + r->off, m->cursor_len);
		r->off = r->len;
	}
	return 0;
bad:
	csrecord_meta_free(m);
	return -1;
}

struct session *csrecord_build(struct cluster *cl, const struct cl_meta *m)
{
	struct broker *b = cl->b;
	struct restore_session rs = {
		.id = m->id,
		.version = m->version,
		.expiry = m->expiry ? m->expiry : 1,
		.username = m->username,
		.listener = m->listener,
		.was_connected = m->expires_wall == 0,
		.expires_at = m->expires_wall,
	};
	struct session *s = restore_session(b, &rs);
	if (!s)
		return NULL;
	for (uint32_t i = 0; i < m->n_subs; i++)
		if (restore_sub(s, m->subs[i].filter, m->subs[i].options, m->subs[i].sub_id))
			log_msg(b, LOG_F_WARNING, "Cluster: subscription '%s' of client %s could not be restored.",
				m->subs[i].filter, m->id);
	return s;
}

/* ---- records ------------------------------------------------------------------ */

static int rec_subject(struct cluster *cl, const char *id, char *subj, size_t cap)
{
	char tok[CL_SUBJ_MAX + 1];
	if (subject_token(tok, sizeof(tok), (const uint8_t *)id, strlen(id)) < 0)
		return -1;
	int n = snprintf(subj, cap, "$KV.%s.%016" PRIx64 ".%s", cl->bucket[3], cl->inst, tok);
	return n < 0 || (size_t)n >= cap || n > CL_SUBJ_MAX ? -1 : 0;
}

bool csrecord_recorded(const struct session *s)
{
	return s->expiry != 0 && !s->bridge_owned;
}

static void rec_put(struct cluster *cl, struct session *s)
{
	char subj[CL_SUBJ_MAX + 1];
	if (!cl->joined || rec_subject(cl, s->id, subj, sizeof(subj)))
		return; /* too long an id: the session stays on this node only */
	struct cl_wbuf w = {0};
	csrecord_encode(cl, s, &w, true);
	if (!w.err && w.len < (size_t)natsConnection_GetMaxPayload(cl->nc) &&
	    natsConnection_Publish(cl->nc, subj, w.p, (int)w.len) == NATS_OK)
		s->cluster_rec = true;
	else
		log_msg(cl->b, LOG_F_WARNING, "Cluster: the session record of client %s was not stored.", s->id);
	free(w.p);
}

void csrecord_store(struct cluster *cl, struct session *s)
{
	rec_put(cl, s);
}

void csrecord_end(void *u, struct session *s)
{
	struct cluster *cl = u;
	char subj[CL_SUBJ_MAX + 1];
	if (s->cluster_rec && cl->joined && !rec_subject(cl, s->id, subj, sizeof(subj)))
		natsConnection_Publish(cl->nc, subj, "", 0); /* an empty record: gone */
	s->cluster_rec = false;
}

void csrecord_changed(void *u, struct session *s)
{
	struct cluster *cl = u;
	if (csrecord_recorded(s))
		rec_put(cl, s);
	else if (s->cluster_rec)
		csrecord_end(u, s);
}

void csrecord_put_all(struct cluster *cl)
{
	struct broker *b = cl->b;
	for (uint32_t i = 0; i < b->stab_size; i++)
		for (struct session *s = b->stab[i]; s; s = s->hnext)
			if (csrecord_recorded(s) && !csession_busy(cl, s->id))
				rec_put(cl, s);
}

void csrecord_adopt(struct cluster *cl, natsMsg *msg, uint64_t inst)
{
	struct broker *b = cl->b;
	struct cl_rbuf r = {(const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, false};
	struct cl_meta m;
	if (r.len == 0 || csrecord_decode(&r, &m))
		return; /* deleted (the session ended), or not ours to read */
	struct session *s = session_find(b, m.id);
	if (s) {
		/* Its client is back here already (or its session is on its way
		 * from the dead node's last answer): that one is newer. */
		log_msg(b, LOG_F_INFORMATION, "Cluster: session of client %s of a dead node is here already.", m.id);
	} else if ((s = csrecord_build(cl, &m))) {
		store_session_saved(b, s); /* durable here, with its subscriptions (persistence on) */
		if (m.format == 2)
			cadopt_add(cl, s, inst, &m); /* its messages come from the stream (cadopt_done logs it) */
		else
			log_msg(b, LOG_F_NOTICE, "Cluster: resumed the session of client %s of a dead node here "
					     "(%u subscription(s)); its record says nothing of its messages.", m.id, s->n_subs);
		rec_put(cl, s); /* and ours now (with the dead node's cursor while its replay runs) */
	}
	csrecord_meta_free(&m);
}
