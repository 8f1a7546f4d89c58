/*
 * broker/main.c — the composition root: command line, configuration,
 * listeners, privileges, signals (through signalfd, handled in the loop),
 * service notifications (notify.c), and the loop itself. Owns the one struct
 * broker.
 * Start-up order, as mosquitto's: parse the configuration (errors name file
 * and line), open the log, bind the listeners and load the TLS, password and
 * ACL files, fork (-d), write pid_file, drop to `user`, then open the store
 * (so its files belong to the running user) and tell systemd READY=1.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "bridge/bridge.h"
#include "broker.h"
#include "notify.h"
#include "health.h"
#include "cluster/cluster.h"
#include "store_sqlite.h"

struct app {
	struct broker b;
	const char *conf_file;
	int cmd_port;                  /* the first -p, 0 if none */
	uint16_t more_ports[CONFIG_CMD_PORTS - 1]; /* the others */
	size_t n_more_ports;
	int sigfd;
	struct notify *notify;
	bool stop;
	bool reload;
};

static void usage(FILE *f)
{
	fprintf(f, "vigil version %s\n\n"
		   "vigil is an MQTT v5.0/v3.1.1/v3.1 broker, a drop-in replacement for mosquitto.\n\n"
		   "Usage: vigil [-c config_file] [-d] [-h] [-p port] [-v]\n"
		   "       vigil --check [-c config_file] [-p port] [--timeout ms]\n\n"
		   " -c : specify the broker config file (mosquitto.conf syntax).\n"
		   " -d : put the broker into the background after starting.\n"
		   " -h, --help : display this help.\n"
		   " -p : start the broker listening on the specified port.\n"
		   "      Not recommended in conjunction with the -c option.\n"
		   " -v : verbose mode - enable all logging types. This overrides\n"
		   "      any logging options given in the config file.\n"
		   " --version : print the version and exit.\n"
		   " --check : health check: CONNECT/CONNACK on a listener of the config; exit 0 or 1.\n\n"
		   "See https://mosquitto.org/ for the configuration file format.\n",
		VIGIL_VERSION);
}

/* "1883" or "1883, 1884": the ports of local only mode (one IPv4 and one
 * IPv6 listener each). */
static const char *local_ports(const struct config *c, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < c->n_listeners && n < len; i += 2)
		n += (size_t)snprintf(buf + n, len - n, "%s%d", i ? ", " : "", c->listeners[i].port);
	return buf;
}

static void warn_cb(const char *msg, void *u)
{
	(void)u;
	fprintf(stderr, "Warning: %s\n", msg);
}

/* SIGUSR2: mosquitto 2.0.11 prints its subscription tree to stdout (a
 * debugging aid). vigil prints every session's subscriptions to stdout, one
 * "client_id filter qos" line each, and logs the totals. Nothing changes. */
static void dump_subscriptions(struct broker *b)
{
	for (uint32_t i = 0; i < b->stab_size; i++)
		for (const struct session *s = b->stab[i]; s; s = s->hnext)
			for (uint32_t k = 0; k < s->n_subs; k++)
				printf("%s %s %u\n", s->id, s->subs[k].filter, s->subs[k].options & 3u);
	fflush(stdout);
	log_msg(b, LOG_F_NOTICE, "SIGUSR2: %zu subscriptions (%zu shared), %u sessions, %zu retained messages.",
		subtree_count(b->subs), subtree_shared_count(b->subs), b->n_sessions, retain_count(b->retained));
}

static void on_signal(struct net_loop *loop, int fd, unsigned events, void *user)
{
	struct app *a = user;
	struct signalfd_siginfo si;
	(void)loop;
	(void)events;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			a->stop = true;
		else if (si.ssi_signo == SIGHUP)
			a->reload = true;
		else if (si.ssi_signo == SIGUSR1)
			sys_publish(&a->b);
		else if (si.ssi_signo == SIGUSR2)
			dump_subscriptions(&a->b);
	}
}

/* SIGHUP: re-read the configuration file, move the reloadable options into
 * the live configuration, then reload password/ACL/TLS files. */
static void reload(struct app *a)
{
	struct broker *b = &a->b;
	bool reopened = false;
	notify_reloading(a->notify);
	if (a->conf_file) {
		struct config fresh;
		char err[1024];
		config_init(&fresh);
		memcpy(fresh.more_ports, a->more_ports, sizeof(fresh.more_ports));
		fresh.n_more_ports = a->n_more_ports;
		fresh.verbose = b->cfg->verbose;
		fresh.daemon = b->cfg->daemon;
		if (config_parse_file(&fresh, a->conf_file, warn_cb, NULL, err, sizeof(err)) ||
		    config_finish_warn(&fresh, a->cmd_port, warn_cb, NULL, err, sizeof(err))) {
			log_msg(b, LOG_F_ERROR, "Error reloading %s: %s; keeping the running configuration.",
				a->conf_file, err);
		} else {
			config_reload(b->cfg, &fresh, warn_cb, NULL);
			log_reinit(b); /* opens log_dest file afresh (logrotate) */
			reopened = true;
		}
		config_free(&fresh);
	}
	if (!reopened)
		log_reopen(b);
	broker_reload(b);
	notify_ready(a->notify);
}

static int drop_privileges(struct broker *b, const char *user)
{
	if (geteuid() != 0 || !user || strcmp(user, "root") == 0)
		return 0;
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		log_msg(b, LOG_F_WARNING,
			"Warning: unable to drop privileges to '%s' because this user does not exist; running as root.",
			user);
		return 0;
	}
	if (initgroups(user, pw->pw_gid) || setgid(pw->pw_gid) || setuid(pw->pw_uid)) {
		log_msg(b, LOG_F_ERROR, "Error setting user to %s: %s.", user, strerror(errno));
		return -1;
	}
	return 0;
}

/* Every connection is a descriptor: take the hard limit the system grants
 * (compat: mosquitto leaves the soft limit, often 1024, to the service unit). */
static void raise_nofile(struct broker *b)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_msg(b, LOG_F_INFORMATION, "Raised the open file limit from %llu to %llu.",
				(unsigned long long)was, (unsigned long long)rl.rlim_max);
	}
}

/* The loop's before_flush hook: this pass's durable changes are committed
 * before its acknowledgements leave (net runs it before every write). */
static void before_flush(struct net_loop *loop, void *user)
{
	(void)loop;
	store_commit(user);
}

static int write_pid_to(const char *path, const char *line)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(line, f);
	return fclose(f);
}

/* Whole or not at all: a service manager or script that sees the file
 * must read the pid (a temporary file renamed over it; written in place
 * only where the directory refuses the temporary one). */
static int write_pid(const char *path)
{
	char line[32], tmp[PATH_MAX];
	snprintf(line, sizeof line, "%d\n", (int)getpid());
	if (snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid()) < (int)sizeof tmp &&
	    write_pid_to(tmp, line) == 0) {
		if (rename(tmp, path) == 0)
			return 0;
		unlink(tmp);
	}
	return write_pid_to(path, line);
}

/* At exit, as the running user: its directory must be writable by `user`
 * (systemd's RuntimeDirectory=, or /run/vigil owned by it). */
static void remove_pid(struct broker *b, const char *path)
{
	if (unlink(path) && errno != ENOENT)
		log_msg(b, LOG_F_WARNING, "Warning: unable to remove pid file %s: %s.", path, strerror(errno));
}

int main(int argc, char **argv)
{
	static struct app app; /* large; not on the stack */
	struct config cfg;
	char err[1024];
	const char *conf_file = NULL;
	int cmd_port = 0;
	int rc = 1;
	bool pid_written = false;
	struct store_db *store = NULL;

	if (health_wanted(argc, argv))
		return health_main(argc, argv);
	config_init(&cfg);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-c") || !strcmp(a, "--config-file")) {
			if (++i >= argc) {
				fprintf(stderr, "Error: -c argument given, but no config file specified.\n");
				goto out_cfg;
			}
			conf_file = argv[i];
		} else if (!strcmp(a, "-p") || !strcmp(a, "--port")) {
			char *end;
			long p = ++i < argc ? strtol(argv[i], &end, 10) : -1;
			if (p < 1 || p > 65535 || *end) {
				fprintf(stderr, "Error: Invalid port specified.\n");
				goto out_cfg;
			}
			if (!cmd_port) {
				cmd_port = (int)p;
			} else if (cfg.n_more_ports == CONFIG_CMD_PORTS - 1) {
				fprintf(stderr, "Error: Only %d ports can be specified on the command line.\n",
					CONFIG_CMD_PORTS);
				goto out_cfg;
			} else {
				cfg.more_ports[cfg.n_more_ports++] = (uint16_t)p;
			}
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			cfg.verbose = true;
		} else if (!strcmp(a, "-d") || !strcmp(a, "--daemon")) {
			cfg.daemon = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			rc = 0;
			goto out_cfg;
		} else if (!strcmp(a, "--version")) {
			printf("vigil version %s\n", VIGIL_VERSION);
			rc = 0;
			goto out_cfg;
		} else {
			fprintf(stderr, "Error: Unknown option '%s'.\n", a);
			usage(stderr);
			goto out_cfg;
		}
	}
	bool verbose = cfg.verbose, daemon_mode = cfg.daemon;
	app.conf_file = conf_file;
	app.cmd_port = cmd_port;
	memcpy(app.more_ports, cfg.more_ports, sizeof(app.more_ports));
	app.n_more_ports = cfg.n_more_ports;
	if (conf_file && config_parse_file(&cfg, conf_file, warn_cb, NULL, err, sizeof(err))) {
		fprintf(stderr, "Error: %s\n", err);
		goto out_cfg;
	}
	cfg.verbose = cfg.verbose || verbose;
	cfg.daemon = cfg.daemon || daemon_mode;
	if (config_finish_warn(&cfg, cmd_port, warn_cb, NULL, err, sizeof(err))) {
		fprintf(stderr, "Error: %s\n", err);
		goto out_cfg;
	}

	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);

	struct net_loop *loop = net_loop_new();
	if (!loop || broker_init(&app.b, &cfg, loop)) {
		fprintf(stderr, "Error: out of memory.\n");
		goto out_loop;
	}
	struct broker *b = &app.b;
	char ports[80];
	log_msg(b, LOG_F_NOTICE, "vigil version %s starting", VIGIL_VERSION);
	if (conf_file)
		log_msg(b, LOG_F_NOTICE, "Config loaded from %s.", conf_file);
	if (cfg.local_only)
		log_msg(b, LOG_F_NOTICE,
			"Starting in local only mode: listening on localhost port%s %s only, anonymous clients allowed "
			"(configure a 'listener' with -c FILE to accept remote clients).",
			cfg.n_more_ports ? "s" : "", local_ports(&cfg, ports, sizeof(ports)));
	raise_nofile(b);
	if (broker_listen(b, err, sizeof(err)) || api_start(b, err, sizeof(err))) {
		log_msg(b, LOG_F_ERROR, "Error: %s", err);
		goto out_broker;
	}
	/* -d changes to /: a relative persistence_location means the directory
	 * vigil was started in. */
	if (cfg.daemon && cfg.persistence && (!cfg.persistence_location || cfg.persistence_location[0] != '/')) {
		char cwd[4096], *abs = NULL;
		const char *rel = cfg.persistence_location ? cfg.persistence_location : "";
		if (getcwd(cwd, sizeof(cwd)) && asprintf(&abs, "%s/%s", cwd, rel) >= 0) {
			free(cfg.persistence_location);
			cfg.persistence_location = abs;
		}
	}
	if (cfg.daemon && daemon(0, 0)) {
		log_msg(b, LOG_F_ERROR, "Error: unable to fork: %s.", strerror(errno));
		goto out_broker;
	}
	if (cfg.pid_file && write_pid(cfg.pid_file))
		log_msg(b, LOG_F_WARNING, "Warning: unable to write pid file %s.", cfg.pid_file);
	else
		pid_written = cfg.pid_file != NULL;
	if (drop_privileges(b, cfg.user))
		goto out_broker;
	/* After fork (the NATS thread must not cross it); before the store
	 * restores subscriptions (the cluster learns every filter). */
	if (cluster_start(b, err, sizeof(err))) {
		log_msg(b, LOG_F_ERROR, "Error: %s.", err);
		goto out_broker;
	}
	/* After fork and setuid: the store file belongs to the running user,
	 * and an SQLite handle must not cross a fork. */
	if (store_db_start(b, &store, err, sizeof(err))) {
		log_msg(b, LOG_F_ERROR, "Error: %s.", err);
		goto out_broker;
	}
	net_loop_set_before_flush(loop, before_flush, b);

	app.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (app.sigfd < 0 || net_fd_add(loop, app.sigfd, NET_READ, on_signal, &app)) {
		log_msg(b, LOG_F_ERROR, "Error: signalfd: %s.", strerror(errno));
		goto out_broker;
	}
	sys_start(b);
	if (bridge_start_all(b, err, sizeof(err))) {
		log_msg(b, LOG_F_ERROR, "Error: %s", err);
		goto out_broker;
	}
	log_msg(b, LOG_F_NOTICE, "vigil version %s running", VIGIL_VERSION);
	app.notify = notify_new(b);
	notify_ready(app.notify); /* listeners open, store loaded, bridges started */

	while (!app.stop) {
		broker_run_once(b);
		if (app.reload) {
			app.reload = false;
			reload(&app);
		}
	}
	/* SIGTERM/SIGINT: stop accepting, DISCONNECT 0x8B to v5 clients,
	 * flush, close with FIN, exit within ~2 s. */
	notify_stopping(app.notify);
	bridge_stop_all(b);
	broker_shutdown(b);
	cluster_leave(b); /* its goodbye before the flushing below, which runs no timers */
	/* Budget 1.5 s for flushing and FIN handshakes, so the exit stays
	 * within 2 s even with peers that never close their end. */
	uint64_t deadline = net_now_update(loop) + 1500;
	while ((b->clients || net_loop_lingering(loop)) && net_now_update(loop) < deadline)
		net_loop_run_once(loop, 50);
	net_fd_del(loop, app.sigfd);
	close(app.sigfd);
	rc = 0;
out_broker:
	notify_free(app.notify);
	api_stop(b); /* HTTP API listeners and their streams, before the clients go */
	cluster_stop(b); /* before broker_fini: sessions ending now are not the cluster's business */
	store_db_stop(b, store); /* before broker_fini ends every session */
	bridge_free_all(b);
	if (pid_written)
		remove_pid(b, cfg.pid_file);
	broker_fini(b);
out_loop:
	net_loop_free(loop);
out_cfg:
	config_free(&cfg);
	return rc;
}
