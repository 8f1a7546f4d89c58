/*
 * broker/api/api_http.c — the HTTP API's request handler: authentication, routing, and the streamed
 * client listing.
 *
 * Routes (GET and HEAD; a known path with another method is 405, anything else 404):
 *   /                 the status page (api_page.c)
 *   /api/v1/health    {"status": "ok", ...}
 *   /metrics          Prometheus text format 0.0.4 (api_metrics.c)
 *   /api/v1/clients   connected clients, newest connection first; ?limit=N&offset=M; streamed
 *   /api/v1/systree   {"$SYS/...": "value", ...}
 *   /api/v1/events    recent keepalive timeouts and wills, newest first (the status page's)
 * Auth: on a listener with a password_file and allow_anonymous false, every request needs Basic
 * credentials that the MQTT password check accepts; otherwise 401 with WWW-Authenticate: Basic.
 *
 * The client listing is pulled by net/http.c one slice at a time (API_ROWS_PER_FILL rows at most, and at
 * most API_STEPS_PER_FILL list steps while skipping an offset), so a listing of 100k clients never holds
 * the loop for more than a slice. The cursor is a position in the core's client list, moved on by
 * api_client_gone when that client leaves: a client connected for the whole answer appears exactly once;
 * one that connects meanwhile is not in it (it is newer than the cursor).
 * Does not: parse HTTP (libwebsockets does, in net/http.c), or read broker state itself (api_view.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

#define API_ROWS_PER_FILL 64
#define API_STEPS_PER_FILL 4096

static const char *const JSON = "application/json; charset=utf-8";

static void answer_jbuf(struct net_http_req *r, int status, const char *ctype, struct jbuf *j)
{
	if (j->oom)
		net_http_respond(r, 503, "text/plain", NULL, "out of memory\n", 14);
	else
		net_http_respond(r, status, ctype, NULL, j->p ? j->p : "", j->len);
	jb_free(j);
}

/* ---- the streamed client listing --------------------------------------------------------- */

static void stream_release(void *state)
{
	struct api_stream *s = state;
	struct api *a = s->a;
	if (s->prev)
		s->prev->next = s->next;
	else if (a->streams == s)
		a->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	jb_free(&s->pend);
	free(s);
}

/* Render the next rows into s->pend (bounded work). */
static void stream_render(struct api_stream *s)
{
	struct api *a = s->a;
	if (!s->opened) {
		jb_puts(&s->pend, "[");
		s->opened = true;
	}
	unsigned rows = 0, steps = 0;
	while (s->cursor && s->left && rows < API_ROWS_PER_FILL && steps < API_STEPS_PER_FILL) {
		const void *c = s->cursor;
		s->cursor = api_view_client_next(c);
		steps++;
		struct api_client_row row;
		if (!api_view_client_row(a->b, c, &row))
			continue;
		if (s->skip) {
			s->skip--;
			continue;
		}
		jb_puts(&s->pend, s->emitted ? ",\n  " : "\n  ");
		api_client_json(&s->pend, &row);
		s->emitted++;
		s->left--;
		rows++;
	}
	if (!s->cursor || !s->left) {
		jb_puts(&s->pend, s->emitted ? "\n]\n" : "]\n");
		s->closed = true;
	}
}

static size_t stream_fill(void *state, uint8_t *buf, size_t cap, bool *done)
{
	struct api_stream *s = state;
	size_t out = 0;
	bool rendered = false;
	while (out < cap) {
		if (s->pend_off < s->pend.len) {
			size_t n = s->pend.len - s->pend_off;
			if (n > cap - out)
				n = cap - out;
			memcpy(buf + out, s->pend.p + s->pend_off, n);
			s->pend_off += n;
			out += n;
			continue;
		}
		s->pend.len = s->pend_off = 0;
		if (s->closed || s->pend.oom) {
			/* oom: the document ends short (invalid JSON); the client
			 * sees a parse error rather than a silently short list */
			*done = true;
			break;
		}
		if (rendered)
			break; /* one render per call: bounded work per writable slot */
		stream_render(s);
		rendered = true;
	}
	return out;
}

/* "" or digits only, at most 10^12. */
static int parse_count(const char *v, uint64_t *out)
{
	if (!*v || strlen(v) > 12)
		return -1;
	uint64_t n = 0;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*out = n;
	return 0;
}

static void clients(struct api *a, struct net_http_req *r)
{
	char v[32];
	uint64_t limit = UINT64_MAX, offset = 0;
	if ((net_http_query(r, "limit", v, sizeof v) == 0 && parse_count(v, &limit) < 0) ||
	    (net_http_query(r, "offset", v, sizeof v) == 0 && parse_count(v, &offset) < 0)) {
		net_http_respond(r, 400, "text/plain", NULL, "limit and offset must be non-negative integers\n", 47);
		return;
	}
	struct api_stream *s = calloc(1, sizeof *s);
	if (!s) {
		net_http_respond(r, 503, "text/plain", NULL, "out of memory\n", 14);
		return;
	}
	s->a = a;
	s->cursor = api_view_client_first(a->b);
	s->skip = offset;
	s->left = limit;
	char extra[64];
	snprintf(extra, sizeof extra, "X-Total-Count: %" PRIu64 "\r\n", api_view_clients_connected(a->b));
	if (net_http_stream(r, 200, JSON, extra, stream_fill, s, stream_release) < 0) {
		free(s);
		net_http_respond(r, 503, "text/plain", NULL, "out of memory\n", 14);
		return;
	}
	s->next = a->streams;
	if (a->streams)
		a->streams->prev = s;
	a->streams = s;
}

/* ---- routing -------------------------------------------------------------------------------- */

enum route { R_NONE, R_PAGE, R_HEALTH, R_METRICS, R_CLIENTS, R_SYSTREE, R_EVENTS };

static enum route route_of(const char *path)
{
	static const struct {
		const char *path;
		enum route r;
	} t[] = {
		{"/", R_PAGE},
		{"/index.html", R_PAGE},
		{"/api/v1/health", R_HEALTH},
		{"/metrics", R_METRICS},
		{"/api/v1/clients", R_CLIENTS},
		{"/api/v1/systree", R_SYSTREE},
		{"/api/v1/events", R_EVENTS},
	};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++)
		if (!strcmp(path, t[i].path))
			return t[i].r;
	return R_NONE;
}

static bool authorized(const struct api_http_listener *hl, struct net_http_req *r)
{
	if (!api_view_auth_required(hl->core_listener))
		return true;
	char user[256], pass[512];
	bool ok = net_http_basic_auth(r, user, sizeof user, pass, sizeof pass) == 0 &&
		  api_view_password_ok(hl->core_listener, user, pass);
	explicit_bzero(pass, sizeof pass);
	return ok;
}

void api_http_request(struct net_http_req *r, void *user)
{
	struct api_http_listener *hl = user;
	struct api *a = hl->a;
	a->requests++;
	if (!authorized(hl, r)) {
		a->unauthorized++;
		net_http_respond(r, 401, "text/plain", "WWW-Authenticate: Basic realm=\"vigil\", charset=\"UTF-8\"\r\n",
				 "authentication required\n", 24);
		return;
	}
	enum route rt = route_of(net_http_path(r));
	if (rt == R_NONE) {
		net_http_respond(r, 404, "text/plain", NULL, "not found\n", 10);
		return;
	}
	const char *m = net_http_method(r);
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) { /* HEAD: the GET answer's head (net/http.c) */
		net_http_respond(r, 405, "text/plain", "Allow: GET, HEAD\r\n", "method not allowed\n", 19);
		return;
	}
	struct jbuf j = {0};
	switch (rt) {
	case R_PAGE:
		net_http_respond(r, 200, "text/html; charset=utf-8", NULL, api_page_html, strlen(api_page_html));
		return;
	case R_HEALTH:
		api_health_json(a, &j);
		answer_jbuf(r, 200, JSON, &j);
		return;
	case R_METRICS:
		api_metrics_text(a, &j);
		answer_jbuf(r, 200, "text/plain; version=0.0.4; charset=utf-8", &j);
		return;
	case R_SYSTREE:
		api_systree_json(a, &j);
		answer_jbuf(r, 200, JSON, &j);
		return;
	case R_EVENTS:
		api_events_json(a, &j, API_EVENTS);
		answer_jbuf(r, 200, JSON, &j);
		return;
	case R_CLIENTS:
		clients(a, r);
		return;
	case R_NONE:
		break;
	}
}
