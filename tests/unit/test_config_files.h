/*
 * tests/unit/test_config_files.h — the file-based half of test_config.c
 * (included once by it, which defines C, W, E, warn_cb, has_warning, setup
 * and teardown): include_dir order and errors, the per-file default listener,
 * and three real-world mosquitto.conf files, each in a fresh temporary
 * directory. A header only because the Makefile links test_config with
 * config.o alone and files stay under 800 lines.
 */
#ifndef VIGIL_TEST_CONFIG_FILES_H
#define VIGIL_TEST_CONFIG_FILES_H

/* ---- files and include_dir ------------------------------------------------------------ */

static char dir[64];

static void write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void mkdir_in(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert_int_eq(mkdir(path, 0700), 0);
}

static void setup_dir(void)
{
	setup();
	snprintf(dir, sizeof(dir), "/tmp/vigil-test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown_dir(void)
{
	teardown();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static int load_file(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (config_parse_file(&C, path, warn_cb, &W, E, sizeof(E)))
		return -1;
	return config_finish(&C, 0, E, sizeof(E));
}

START_TEST(include_dir_order_is_mosquittos)
{
	mkdir_in("conf.d");
	/* mosquitto.conf(5): 00.conf 01.conf A.conf a.conf B.conf b.conf */
	const char *order[] = {"b.conf", "A.conf", "01.conf", "a.conf", "B.conf", "00.conf"};
	const int port[] = {6, 3, 2, 4, 5, 1};
	for (int i = 0; i < 6; i++) {
		char name[64], text[64];
		snprintf(name, sizeof(name), "conf.d/%s", order[i]);
		snprintf(text, sizeof(text), "listener %d\n", 1000 + port[i]);
		write_file(name, text);
	}
	write_file("conf.d/.conf", "listener 2000\n");     /* ignored: no name before .conf */
	write_file("conf.d/x.conf.bak", "bogus line\n");   /* ignored: not *.conf */
	char main_text[256];
	snprintf(main_text, sizeof(main_text), "allow_anonymous true\ninclude_dir %s/conf.d\nlistener 1007\n", dir);
	write_file("main.conf", main_text);
	ck_assert_msg(load_file("main.conf") == 0, "%s", E);
	ck_assert_uint_eq(C.n_listeners, 7);
	for (int i = 0; i < 7; i++)
		ck_assert_int_eq(C.listeners[i].port, 1001 + i);
	ck_assert_int_eq(C.listeners[0].line, 1);
	ck_assert(strstr(C.listeners[0].file, "/conf.d/00.conf"));
}
END_TEST

START_TEST(include_dir_errors_name_the_included_file)
{
	mkdir_in("d");
	write_file("d/a.conf", "listener 1883\n\nmax_qos 9\n");
	char main_text[256];
	snprintf(main_text, sizeof(main_text), "include_dir %s/d\n", dir);
	write_file("main.conf", main_text);
	ck_assert_int_eq(load_file("main.conf"), -1);
	char want[256];
	snprintf(want, sizeof(want), "%s/d/a.conf:3: max_qos: invalid value '9' (expected an integer 0..2)", dir);
	ck_assert_str_eq(E, want);
}
END_TEST

START_TEST(include_dir_nested_and_missing)
{
	mkdir_in("d");
	mkdir_in("e");
	write_file("e/x.conf", "listener 2222\n");
	char text[256];
	snprintf(text, sizeof(text), "listener 1111\ninclude_dir %s/e\n", dir);
	write_file("d/a.conf", text);
	snprintf(text, sizeof(text), "include_dir %s/d\n", dir);
	write_file("main.conf", text);
	ck_assert_msg(load_file("main.conf") == 0, "%s", E);
	ck_assert_uint_eq(C.n_listeners, 1); /* include_dir only in the main file, as mosquitto */
	ck_assert(has_warning(&W, "a.conf:2: include_dir is read only in the main configuration file"));
	config_free(&C);
	snprintf(text, sizeof(text), "include_dir %s/nonexistent\n", dir);
	write_file("bad.conf", text);
	ck_assert_int_eq(load_file("bad.conf"), -1);
	ck_assert(strstr(E, "bad.conf:1: include_dir: cannot open '"));
	ck_assert_int_eq(load_file("no-such.conf"), -1);
	ck_assert(strstr(E, "no-such.conf: cannot open: "));
}
END_TEST

START_TEST(included_file_starts_at_default_listener)
{
	/* mosquitto 2.0.11: each file starts with the default listener current, so
	 * mount_point at the top of an included file opens port 1883 */
	mkdir_in("d");
	write_file("d/a.conf", "mount_point foo/\n");
	char text[256];
	snprintf(text, sizeof(text), "listener 1884\ninclude_dir %s/d\n", dir);
	write_file("main.conf", text);
	ck_assert_msg(load_file("main.conf") == 0, "%s", E);
	ck_assert_uint_eq(C.n_listeners, 2);
	ck_assert_ptr_null(C.listeners[0].mount_point);
	ck_assert_int_eq(C.listeners[1].port, 1883);
	ck_assert_str_eq(C.listeners[1].mount_point, "foo/");
	ck_assert(has_warning(&W, "a.conf:1: 'mount_point' comes before any 'listener' line of this file"));
}
END_TEST

/* ---- real-world files ------------------------------------------------------------ */

START_TEST(real_world_tls_websockets_password_acl)
{
	write_file("prod.conf",
		   "# /etc/mosquitto/mosquitto.conf\n"
		   "pid_file /run/mosquitto/mosquitto.pid\n"
		   "persistence true\n"
		   "persistence_location /var/lib/mosquitto/\n"
		   "log_dest file /var/log/mosquitto/mosquitto.log\n"
		   "log_type error\nlog_type warning\nlog_type notice\n"
		   "allow_anonymous false\n"
		   "password_file /etc/mosquitto/passwd\n"
		   "acl_file /etc/mosquitto/acl\n"
		   "\n"
		   "listener 1883 localhost\n"
		   "\n"
		   "listener 8883\n"
		   "cafile /etc/mosquitto/ca_certificates/ca.crt\n"
		   "certfile /etc/mosquitto/certs/server.crt\n"
		   "keyfile /etc/mosquitto/certs/server.key\n"
		   "tls_version tlsv1.2\n"
		   "\n"
		   "listener 8083\n"
		   "protocol websockets\n"
		   "certfile /etc/mosquitto/certs/server.crt\n"
		   "keyfile /etc/mosquitto/certs/server.key\n");
	ck_assert_msg(load_file("prod.conf") == 0, "%s", E);
	ck_assert_int_eq(W.n, 0); /* persistence and persistence_location: implemented */
	ck_assert_uint_eq(C.n_listeners, 3);
	ck_assert_str_eq(C.listeners[0].bind_address, "localhost");
	ck_assert_str_eq(C.listeners[1].tls_version, "tlsv1.2");
	ck_assert(C.listeners[2].websockets);
	ck_assert_str_eq(C.listeners[2].certfile, "/etc/mosquitto/certs/server.crt");
	ck_assert_int_eq(C.security.allow_anonymous, 0);
	ck_assert_str_eq(C.security.password_file, "/etc/mosquitto/passwd");
	ck_assert_str_eq(C.security.acl_file, "/etc/mosquitto/acl");
	ck_assert_uint_eq(C.log_dest, LOG_D_FILE);
	ck_assert_uint_eq(C.log_type, LOG_F_ERROR | LOG_F_WARNING | LOG_F_NOTICE);
	ck_assert(C.persistence);
}
END_TEST

START_TEST(real_world_minimal)
{
	write_file("min.conf", "listener 1883\nallow_anonymous true\n");
	ck_assert_msg(load_file("min.conf") == 0, "%s", E);
	ck_assert(!C.local_only);
	ck_assert_uint_eq(C.n_listeners, 1);
	ck_assert_ptr_null(C.listeners[0].bind_address);
	ck_assert_int_eq(C.security.allow_anonymous, 1);
	ck_assert_int_eq(W.n, 0);
}
END_TEST

START_TEST(real_world_docker)
{
	/* the eclipse-mosquitto image's layout: /mosquitto/{config,data,log} */
	write_file("docker.conf",
		   "persistence true\r\n"
		   "persistence_location /mosquitto/data/\r\n"
		   "log_dest file /mosquitto/log/mosquitto.log\r\n"
		   "log_dest stdout\r\n"
		   "log_timestamp_format %Y-%m-%dT%H:%M:%S\r\n"
		   "autosave_interval 300\r\n"
		   "max_queued_messages 5000\r\n"
		   "persistent_client_expiration 14d\r\n"
		   "listener 1883\r\n"
		   "listener 9001\r\n"
		   "protocol websockets\r\n"
		   "allow_anonymous true\r\n");
	ck_assert_msg(load_file("docker.conf") == 0, "%s", E);
	ck_assert_uint_eq(C.n_listeners, 2);
	ck_assert(C.listeners[1].websockets && !C.listeners[0].websockets);
	ck_assert_uint_eq(C.log_dest, LOG_D_FILE | LOG_D_STDOUT);
	ck_assert_str_eq(C.log_file, "/mosquitto/log/mosquitto.log");
	ck_assert_str_eq(C.log_timestamp_format, "%Y-%m-%dT%H:%M:%S");
	ck_assert_str_eq(C.persistence_location, "/mosquitto/data/");
	ck_assert_uint_eq(C.autosave_interval, 300);
	ck_assert_uint_eq(C.max_queued_messages, 5000);
	ck_assert_int_eq(C.persistent_client_expiration, 14 * 86400);
	ck_assert_int_eq(C.security.allow_anonymous, 1);
}
END_TEST

#endif
