/*
 * broker/subtree.h — the subscription tree and the retained-message tree.
 *
 * Subscriptions: topic filters split on '/', one node per level, '+' and
 * '#' children held apart from literal ones, and a separate root for topics
 * that start with '$' (wildcards at the first level never match them:
 * v311 MQTT-4.7.2-1, v5 MQTT-4.7.2-1). Each node holds the plain
 * subscriptions on that filter and the shared-subscription groups on it.
 * Owners are opaque (the broker passes struct session *); one owner has at
 * most one subscription per (filter, share group).
 *
 * Matching only collects: subtree_match fills a vector and delivers nothing
 * (policy runs in the caller's second loop). Overlapping subscriptions of
 * one owner all appear; the caller merges them per owner.
 *
 * Retained tree: topic -> opaque value (the broker's refcounted message),
 * matched by a filter.
 */
#ifndef VIGIL_SUBTREE_H
#define VIGIL_SUBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt.h"

struct sub_entry {
	void *owner;
	uint8_t options;  /* v5 subscription options byte (QoS, NL, RAP, RH) */
	uint32_t sub_id;  /* 0 = none */
};

/* A shared-subscription group ($share/name/filter): members and a cursor
 * the caller may use for round-robin. Groups are per (ShareName, filter):
 * the same name on two filters is two groups. Members keep their order;
 * subtree_remove keeps `cursor` on the same next member (0 when past the
 * end). */
struct sub_group {
	char *name;
	struct sub_entry *members;
	size_t n, cap;
	size_t cursor;
};

struct sub_match {
	struct sub_entry **subs; /* plain subscriptions that match */
	size_t n, cap;
	struct sub_group **groups; /* shared groups with a matching filter */
	size_t ng, gcap;
};

struct subtree;
struct subtree *subtree_new(void);
/* Frees nodes; owners and values are not touched. */
void subtree_free(struct subtree *t);

/* Add or replace (same owner, same filter, same group) a subscription.
 * group NULL for a plain subscription, else the ShareName as a
 * NUL-terminated string (copied). *replaced (may be NULL) says whether one
 * existed; a replacement updates options and sub_id in place. Returns 0,
 * -ENOMEM (nothing changed) or -EINVAL for an empty filter. The filter must
 * be valid and not "$share/..." itself (callers split shares with
 * mqtt_share_split first). */
int subtree_add(struct subtree *t, struct mqtt_str filter, const char *group, void *owner, uint8_t options,
		uint32_t sub_id, bool *replaced);
/* Remove; returns true if it existed. Empty nodes are pruned. */
bool subtree_remove(struct subtree *t, struct mqtt_str filter, const char *group, void *owner);
/* Collect all subscriptions matching topic (a valid topic name): each
 * matching plain subscription once (one owner may appear several times, once
 * per overlapping filter) and each matching share group once. The vectors
 * are reset and reused across calls; call sub_match_free at the end. They
 * point into the tree: valid until the next subtree_add / subtree_remove /
 * subtree_free. Returns 0 or -ENOMEM (then the vectors hold a partial
 * result). Allocates nothing but the vectors. */
int subtree_match(struct subtree *t, struct mqtt_str topic, struct sub_match *m);
void sub_match_free(struct sub_match *m);
size_t subtree_count(const struct subtree *t); /* subscriptions, plain + shared members */
size_t subtree_shared_count(const struct subtree *t); /* of those, shared-group members */
/* Interest watch (the cluster room's filter interest): fn(u, filter, NULL,
 * true) when a filter gets its first plain subscription and (..., false)
 * when it loses its last one; fn(u, filter, group, true / false) when a
 * share group on a filter is created / loses its last member. One watcher;
 * fn NULL: none. fn must not change the tree. */
void subtree_set_watch(struct subtree *t, void (*fn)(void *u, struct mqtt_str filter, const char *group, bool added),
		       void *u);
/* The share group `group` on exactly this filter, or NULL. Valid until the
 * next subtree_add / subtree_remove. */
struct sub_group *subtree_group(struct subtree *t, struct mqtt_str filter, const char *group);

/* ---- retained messages ---- */
struct retain_tree;
struct retain_tree *retain_new(void);
/* Calls drop(value) for each value still held, then frees. */
void retain_free(struct retain_tree *r, void (*drop)(void *value));
/* Set topic's value (NULL clears and prunes). Returns the previous value
 * (caller releases it) or NULL. *err (may be NULL) is 0, or -ENOMEM on
 * failure (nothing changed). */
void *retain_set(struct retain_tree *r, struct mqtt_str topic, void *value, int *err);
void *retain_get(struct retain_tree *r, struct mqtt_str topic);
/* Call fn for each retained value whose topic matches filter (wildcard
 * rules as above, '$' topics only for filters that start with '$'; "a/#"
 * also gives "a"). fn returns false to stop. fn must not modify the tree
 * (collect first, then retain_set). Never allocates, never fails. */
void retain_match(struct retain_tree *r, struct mqtt_str filter, bool (*fn)(void *value, void *ctx), void *ctx);
size_t retain_count(const struct retain_tree *r);

#endif
