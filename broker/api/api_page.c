/*
 * broker/api/api_page.c — the status page (page.html beside this file: plain HTML, CSS and JavaScript,
 * no build step), embedded in the binary with the assembler's .incbin so that vigil serves it without
 * a file on disk. The page polls /api/v1/health, /api/v1/clients and /api/v1/events once a second and
 * counts the keepalive deadlines down between polls.
 * Invariant: api_page_html is NUL-terminated (the .byte 0 after the file).
 */
#include "api_int.h"

__asm__(".section .rodata\n"
	".global api_page_html\n"
	".type api_page_html, @object\n"
	"api_page_html:\n"
	".incbin \"broker/api/page.html\"\n"
	".byte 0\n"
	".size api_page_html, . - api_page_html\n"
	".previous\n");
