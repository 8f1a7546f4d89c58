/*
 * tests/fuzz/fuzz_config.c — libFuzzer harness for the mosquitto.conf parser.
 *
 * Any byte string is parsed as a configuration file (include_dir lines
 * point at paths that do not exist, which is itself an error path), then
 * finished and freed: no crash, no leak, no undefined behaviour, and an
 * error always carries a message. `make fuzz` builds and runs it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	struct config c;
	char err[512] = "";
	config_init(&c);
	if (config_parse_string(&c, "fuzz.conf", text, NULL, NULL, err, sizeof(err)) == 0) {
		if (config_finish(&c, 0, err, sizeof(err)) != 0 && !err[0])
			abort();
	} else if (!err[0]) {
		abort(); /* an error must say what is wrong */
	}
	config_free(&c);
	free(text);
	return 0;
}
