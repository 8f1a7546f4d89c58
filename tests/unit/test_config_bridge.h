/*
 * tests/unit/test_config_bridge.h — the bridge keywords' tests (included by
 * test_config.c, split for the 800-line limit): every option parsed into
 * struct bridge_conf, mosquitto's defaults, every refusal with file and
 * line, and the SIGHUP warning.
 */
/* ---- bridges (config_bridge.h) ---------------------------------------------------- */

START_TEST(bridge_every_option)
{
	LOAD_OK("listener 1883\n"
		"connection edge\n"
		"addresses 10.0.0.1:1884 [::1]:1885 central.example ::2\n"
		"round_robin true\n"
		"topic sensors/# out 1 \"\" site1/\n"
		"topic cmd/# in 2 local/ remote/\n"
		"topic # both\n"
		"topic \"\" out 0 a/b c/d\n"
		"bridge_protocol_version mqttv50\n"
		"try_private false\n"
		"cleansession true\n"
		"local_cleansession false\n"
		"local_clientid loc\n"
		"remote_clientid rem\n"
		"remote_username ru\n"
		"remote_password rp w\n"
		"local_username lu\n"
		"local_password lp\n"
		"notifications false\n"
		"notifications_local_only true\n"
		"notification_topic n/t\n"
		"keepalive_interval 1\n"
		"restart_timeout 2 40\n"
		"start_type once\n"
		"idle_timeout 7\n"
		"threshold 3\n"
		"bridge_attempt_unsubscribe false\n"
		"bridge_outgoing_retain false\n"
		"bridge_max_packet_size 5000\n"
		"bridge_tcp_keepalive 10 2 3\n"
		"bridge_tcp_user_timeout 4000\n"
		"bridge_cafile /ca.crt\n"
		"bridge_capath /ca\n"
		"bridge_certfile /c.crt\n"
		"bridge_keyfile /c.key\n"
		"bridge_insecure true\n"
		"bridge_tls_version tlsv1.3\n"
		"bridge_alpn mqtt\n"
		"listener 1884\n"
		"connection second\n"
		"address h2\n"
		"topic x\n"
		"clientid old\n"
		"username u\n"
		"password p\n"
		"start_type lazy\n"
		"bridge_identity edge-id\n"
		"bridge_psk 00aaFF\n"
		"bridge_tls_version tlsv1.2\n"
		"bridge_bind_address 10.0.0.9\n");
	ck_assert_uint_eq(C.n_bridges, 2);
	const struct bridge_conf *b = &C.bridges[0];
	ck_assert_str_eq(b->name, "edge");
	ck_assert_int_eq(b->line, 2);
	ck_assert_uint_eq(b->n_addrs, 4);
	ck_assert_str_eq(b->addrs[0].host, "10.0.0.1");
	ck_assert_int_eq(b->addrs[0].port, 1884);
	ck_assert_str_eq(b->addrs[1].host, "::1");
	ck_assert_int_eq(b->addrs[1].port, 1885);
	ck_assert_str_eq(b->addrs[2].host, "central.example");
	ck_assert_int_eq(b->addrs[2].port, 1883);
	ck_assert_str_eq(b->addrs[3].host, "::2");
	ck_assert(b->round_robin);
	ck_assert_uint_eq(b->n_topics, 4);
	ck_assert_str_eq(b->topics[0].local_topic, "sensors/#");
	ck_assert_str_eq(b->topics[0].remote_topic, "site1/sensors/#");
	ck_assert_ptr_null(b->topics[0].local_prefix);
	ck_assert_int_eq(b->topics[0].dir, BRIDGE_OUT);
	ck_assert_int_eq(b->topics[0].qos, 1);
	ck_assert_str_eq(b->topics[1].local_topic, "local/cmd/#");
	ck_assert_str_eq(b->topics[1].remote_topic, "remote/cmd/#");
	ck_assert_int_eq(b->topics[1].dir, BRIDGE_IN);
	ck_assert_int_eq(b->topics[1].qos, 2);
	ck_assert_int_eq(b->topics[2].dir, BRIDGE_BOTH);
	ck_assert_int_eq(b->topics[2].qos, 0);
	ck_assert_str_eq(b->topics[3].pattern, "");
	ck_assert_str_eq(b->topics[3].local_topic, "a/b");
	ck_assert_str_eq(b->topics[3].remote_topic, "c/d");
	ck_assert_int_eq(b->protocol, 5);
	ck_assert(!b->try_private);
	ck_assert(b->cleansession);
	ck_assert_int_eq(b->local_cleansession, 0);
	ck_assert_str_eq(b->local_clientid, "loc");
	ck_assert_str_eq(b->remote_clientid, "rem");
	ck_assert_str_eq(b->remote_username, "ru");
	ck_assert_str_eq(b->remote_password, "rp w");
	ck_assert_str_eq(b->local_username, "lu");
	ck_assert_str_eq(b->local_password, "lp");
	ck_assert(!b->notifications);
	ck_assert(b->notifications_local_only);
	ck_assert_str_eq(b->notification_topic, "n/t");
	ck_assert_uint_eq(b->keepalive, 1);
	ck_assert_uint_eq(b->restart_base, 2);
	ck_assert_uint_eq(b->restart_cap, 40);
	ck_assert_int_eq(b->start_type, BRIDGE_START_ONCE);
	ck_assert_uint_eq(b->idle_timeout, 7);
	ck_assert_uint_eq(b->threshold, 3);
	ck_assert(!b->attempt_unsubscribe);
	ck_assert(!b->outgoing_retain);
	ck_assert_uint_eq(b->max_packet_size, 5000);
	ck_assert_int_eq(b->tcp_keepalive_idle, 10);
	ck_assert_int_eq(b->tcp_keepalive_interval, 2);
	ck_assert_int_eq(b->tcp_keepalive_count, 3);
	ck_assert_int_eq(b->tcp_user_timeout_ms, 4000);
	ck_assert_str_eq(b->cafile, "/ca.crt");
	ck_assert_str_eq(b->capath, "/ca");
	ck_assert_str_eq(b->certfile, "/c.crt");
	ck_assert_str_eq(b->keyfile, "/c.key");
	ck_assert(b->insecure);
	ck_assert_str_eq(b->tls_version, "tlsv1.3");
	ck_assert_str_eq(b->alpn, "mqtt");
	b = &C.bridges[1]; /* bridge options after a listener line still configure the bridge */
	ck_assert_str_eq(b->remote_clientid, "old");
	ck_assert_str_eq(b->remote_username, "u");
	ck_assert_str_eq(b->remote_password, "p");
	ck_assert_int_eq(b->start_type, BRIDGE_START_LAZY);
	ck_assert_str_eq(b->psk_identity, "edge-id");
	ck_assert_str_eq(b->psk, "00aaFF");
	ck_assert_str_eq(b->tls_version, "tlsv1.2"); /* TLS-PSK: no CA needed */
	ck_assert_str_eq(b->bind_address, "10.0.0.9");
	ck_assert_ptr_null(C.bridges[0].psk);
	ck_assert_ptr_null(C.bridges[0].bind_address);
	ck_assert(has_warning(&W, "t.conf:43: option 'clientid' is deprecated"));
	ck_assert(has_warning(&W, "t.conf:44: option 'username' is deprecated"));
	ck_assert(has_warning(&W, "t.conf:45: option 'password' is deprecated"));
	ck_assert_uint_eq(C.n_listeners, 2);
}
END_TEST

START_TEST(bridge_defaults_are_mosquittos)
{
	char host[256], want[600];
	gethostname(host, sizeof(host));
	LOAD_OK("listener 1883\nconnection up\naddress h\ntopic t\n");
	const struct bridge_conf *b = &C.bridges[0];
	snprintf(want, sizeof(want), "%s.up", host);
	ck_assert_str_eq(b->remote_clientid, want);
	snprintf(want, sizeof(want), "local.%s.up", host);
	ck_assert_str_eq(b->local_clientid, want);
	snprintf(want, sizeof(want), "$SYS/broker/connection/%s.up/state", host);
	ck_assert_str_eq(b->notification_topic, want);
	ck_assert_int_eq(b->addrs[0].port, 1883);
	ck_assert_int_eq(b->protocol, 4);
	ck_assert(b->try_private && !b->cleansession && b->local_cleansession == 0);
	ck_assert(b->notifications && !b->notifications_local_only);
	ck_assert_uint_eq(b->keepalive, 60);
	ck_assert_uint_eq(b->restart_base, 5);
	ck_assert_uint_eq(b->restart_cap, 30);
	ck_assert_int_eq(b->start_type, BRIDGE_START_AUTOMATIC);
	ck_assert_uint_eq(b->idle_timeout, 60);
	ck_assert_uint_eq(b->threshold, 10);
	ck_assert(b->attempt_unsubscribe && b->outgoing_retain && !b->round_robin);
	ck_assert_int_eq(b->topics[0].dir, BRIDGE_OUT);
	ck_assert_int_eq(b->tcp_user_timeout_ms, -1);
	config_free(&C);
	LOAD_OK("listener 1883\nconnection up\naddress h\ntopic t\nrestart_timeout 20\n");
	ck_assert_uint_eq(C.bridges[0].restart_base, 20);
	ck_assert_uint_eq(C.bridges[0].restart_cap, 0);
}
END_TEST

static const struct {
	const char *text, *msg;
} bridge_bad[] = {
	{"keepalive_interval 5\n", "t.conf:1: keepalive_interval: only valid in a bridge section (after a 'connection' line)"},
	{"connection a\nconnection a\n", "t.conf:2: connection: duplicate bridge name 'a' (first at t.conf:1)"},
	{"connection a\naddress h\naddress g\n", "t.conf:3: address: duplicate address/addresses value in bridge 'a'"},
	{"connection a\naddress h:0\n", "t.conf:2: port: invalid value '0' (expected an integer 1..65535)"},
	{"connection a\naddress [::1\n", "t.conf:2: address: invalid address '[::1'"},
	{"connection a\ntopic x sideways\n", "t.conf:2: topic: invalid direction 'sideways' (expected in, out or both)"},
	{"connection a\ntopic x in 3\n", "t.conf:2: topic: invalid value '3' (expected an integer 0..2)"},
	{"connection a\ntopic x in 0 l/\n", "t.conf:2: topic: a local prefix needs a remote prefix too (use \"\" for none)"},
	{"connection a\ntopic # in 0 l/+ r/\n", "t.conf:2: topic: invalid prefix 'l/+' (a prefix cannot contain '+' or '#')"},
	{"connection a\ntopic \"\" in 0 \"\" \"\"\n", "t.conf:2: topic: an empty pattern needs a local or remote prefix"},
	{"connection a\ntopic a/#/b\n", "t.conf:2: topic: 'a/#/b' / 'a/#/b' is not a valid topic filter"},
	{"connection a\nbridge_protocol_version mqttv6\n",
	 "t.conf:2: bridge_protocol_version: invalid value 'mqttv6' (expected mqttv31, mqttv311 or mqttv50)"},
	{"connection a\nkeepalive_interval 0\n", "t.conf:2: keepalive_interval: invalid value '0' (expected an integer 1..65535)"},
	{"connection a\nrestart_timeout 9 3\n", "t.conf:2: restart_timeout: the cap (3) is below the base (9)"},
	{"connection a\nstart_type eager\n",
	 "t.conf:2: start_type: invalid value 'eager' (expected automatic, lazy or once)"},
	{"connection a\nthreshold 0\n", "t.conf:2: threshold: invalid value '0' (expected an integer >= 1)"},
	{"connection a\nidle_timeout x\n",
	 "t.conf:2: idle_timeout: invalid value 'x' (expected an integer >= 0)"},
	{"connection a\nbridge_psk abc\n",
	 "t.conf:2: bridge_psk: invalid value 'abc' (expected an even number of hex digits, at most 512)"},
	{"connection a\nbridge_psk 00zz\n",
	 "t.conf:2: bridge_psk: invalid value '00zz' (expected an even number of hex digits, at most 512)"},
	{"connection a\naddress h\ntopic x\nbridge_psk 0011\n",
	 "t.conf:1: bridge 'a': bridge_psk without bridge_identity (TLS-PSK needs both)"},
	{"connection a\naddress h\ntopic x\nbridge_identity i\n",
	 "t.conf:1: bridge 'a': bridge_identity without bridge_psk (TLS-PSK needs both)"},
	{"connection a\naddress h\ntopic x\nbridge_identity i\nbridge_psk 00\nbridge_cafile c\n",
	 "t.conf:1: bridge 'a': bridge_psk and bridge_cafile/bridge_capath exclude each other (PSK or certificates, "
	 "as in mosquitto)"},
	{"connection a\naddress h\ntopic x\nbridge_alpn mqtt\n",
	 "t.conf:1: bridge 'a': bridge_alpn needs bridge_cafile or bridge_capath or bridge_psk (TLS is on only with a "
	 "CA or a PSK, as in mosquitto)"},
	{"connection a\nbridge_bind_address\n", "t.conf:2: bridge_bind_address: missing value"},
	{"connection a\nbridge_tcp_keepalive 1 2\n", "t.conf:2: bridge_tcp_keepalive: expected three values: idle interval count"},
	{"connection a\nremote_clientid x\nclientid y\n", "t.conf:3: clientid: given twice (mosquitto refuses duplicate values too)"},
	{"connection a\ntopic x\n", "t.conf:1: bridge 'a' has no address"},
	{"connection a\naddress h\n", "t.conf:1: bridge 'a' has no topic"},
	{"connection a\naddress h\ntopic x\nbridge_insecure true\n",
	 "t.conf:1: bridge 'a': bridge_insecure needs bridge_cafile or bridge_capath (TLS is on only with a CA, as in "
	 "mosquitto)"},
	{"connection a\naddress h\ntopic x\nbridge_cafile c\nbridge_certfile f\n",
	 "t.conf:1: bridge 'a': bridge_certfile and bridge_keyfile go together"},
	{"connection a\nbridge_tls_version sslv3\n",
	 "t.conf:2: bridge_tls_version: invalid value 'sslv3' (expected tlsv1.3, tlsv1.2 or tlsv1.1)"},
	{"connection a\naddress h\ntopic x\nremote_password p\n",
	 "t.conf:1: bridge 'a': remote_password needs remote_username (v3.1.1 MQTT-3.1.2-22)"},
};

START_TEST(bridge_bad_values)
{
	LOAD_ERR(bridge_bad[_i].text, bridge_bad[_i].msg);
}
END_TEST

START_TEST(bridge_change_on_reload_warns)
{
	LOAD_OK("listener 1883\nconnection up\naddress h\ntopic t\n");
	struct config f;
	char e[256];
	config_init(&f);
	ck_assert_int_eq(config_parse_string(&f, "t.conf", "listener 1883\nconnection up\naddress h\ntopic t\n", NULL,
					     NULL, e, sizeof(e)), 0);
	ck_assert_int_eq(config_finish(&f, 0, e, sizeof(e)), 0);
	config_reload(&C, &f, warn_cb, &W);
	ck_assert(!has_warning(&W, "bridge configuration changed"));
	config_free(&f);
	ck_assert_int_eq(config_parse_string(&f, "t.conf", "listener 1883\nconnection up\naddress g\ntopic t\n", NULL,
					     NULL, e, sizeof(e)), 0);
	ck_assert_int_eq(config_finish(&f, 0, e, sizeof(e)), 0);
	config_reload(&C, &f, warn_cb, &W);
	ck_assert(has_warning(&W, "bridge configuration changed; restart vigil"));
	ck_assert_str_eq(C.bridges[0].addrs[0].host, "h"); /* the live one is kept */
	config_free(&f);
	W.n = 0;
	ck_assert_int_eq(config_parse_string(&f, "t.conf", "listener 1883\nconnection up\naddress h\ntopic t\n"
					     "start_type lazy\n", NULL, NULL, e, sizeof(e)), 0);
	ck_assert_int_eq(config_finish(&f, 0, e, sizeof(e)), 0);
	config_reload(&C, &f, warn_cb, &W);
	ck_assert(has_warning(&W, "bridge configuration changed; restart vigil"));
	config_free(&f);
}
END_TEST

static void bridge_tcase(TCase *t)
{
	tcase_add_test(t, bridge_every_option);
	tcase_add_test(t, bridge_defaults_are_mosquittos);
	tcase_add_loop_test(t, bridge_bad_values, 0, sizeof(bridge_bad) / sizeof(bridge_bad[0]));
	tcase_add_test(t, bridge_change_on_reload_warns);
}
