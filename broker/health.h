/*
 * broker/health.h — `vigil --check`: the health check (see health.c).
 */
#ifndef VIGIL_HEALTH_H
#define VIGIL_HEALTH_H

/* True when argv asks for the health check ("--check" anywhere). */
int health_wanted(int argc, char **argv);

/* Run the health check with the whole command line ("--check" is skipped;
 * -c FILE, -p PORT and --timeout MS are read). Prints one line saying what
 * was checked and how it went; returns the process exit status: 0 when a
 * listener of the configuration answered CONNECT with a CONNACK in time,
 * 1 otherwise. */
int health_main(int argc, char **argv);

#endif
