/*
 * broker/api/api.h — the HTTP API room as the core sees it: start/stop the `protocol http_api`
 * listeners, and the named calls by which the core reports what the status page shows as recent
 * events. Every call accepts a NULL api (no HTTP listener configured) and then does nothing.
 */
#ifndef VIGIL_API_H
#define VIGIL_API_H

#include <stddef.h>
#include <stdint.h>

struct broker;
struct api;

/* Open every `protocol http_api` listener of b->cfg (after broker_listen:
 * their password files and TLS contexts are loaded there). Sets b->api when
 * there is at least one. 0, or -1 with err filled. */
int api_start(struct broker *b, char *err, size_t errlen);
/* Close the HTTP listeners and their connections; free the room. */
void api_stop(struct broker *b);

/* A client was closed for keepalive: silent for silent_ms (> 1.5 x keepalive s). */
void api_note_keepalive_timeout(struct api *a, const char *client_id, const char *peer, unsigned keepalive,
				uint64_t silent_ms);
/* A will was published for client_id on topic. */
void api_note_will(struct api *a, const char *client_id, const char *topic);
/* A client (the core's struct client) leaves the client list; next is the
 * one after it: a listing being streamed that would visit it next moves on. */
void api_client_gone(struct api *a, const void *client, const void *next);

#endif
