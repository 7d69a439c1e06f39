#ifndef BYPAX_BYPAXD_H
#define BYPAX_BYPAXD_H

#include <stdbool.h>
#include <stdint.h>

#include "bypax/consensus.h"

struct bypaxd_opts {
	const char *config;
	int id;
	const char *sm;
	int route_port[PX_REPLICAS_MAX]; /* -1: the default port 0 */
	uint16_t client_port;
	int leader;                      /* -1: the control plane decides */
	bool no_control;
	bool bootstrap;
	uint32_t idle_sleep_us;
	uint32_t stats_interval_s;
	const char *admin_socket;
	uint32_t snapshot_mb;
};

#endif
