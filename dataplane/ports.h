#ifndef BYPAX_PORTS_H
#define BYPAX_PORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_mempool.h>
#include <rte_ring.h>

#include "bypax/errors.h"

#define DP_MESH_MAX 16u
#define DP_MESH_RING_SIZE 4096u

/* Configures and starts a port with the given queues. Returns 0 or a
 * negative error with err naming the port and the reason. */
int dp_port_start(uint16_t port, uint16_t rx_queues, uint16_t tx_queues,
		  struct rte_mempool *pool, char *err, size_t err_len);

/* Whether the port can send chained (multi-segment) mbufs. */
bool dp_port_multi_seg(uint16_t port);

/* Whether the port computes the IPv4 header checksum of what it sends
 * (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM; dp_port_start turns it on). */
bool dp_port_tx_ip_cksum(uint16_t port);

struct dp_ring_mesh {
	uint16_t endpoints;
	uint16_t ports[DP_MESH_MAX];
	struct rte_ring *rings[DP_MESH_MAX];
};

int dp_ring_mesh_create(struct dp_ring_mesh *mesh, uint16_t endpoints,
			struct rte_mempool *pool, char *err, size_t err_len);
/* Frees every mbuf still waiting in the mesh; returns how many. */
unsigned dp_ring_mesh_drain(struct dp_ring_mesh *mesh);
void dp_ring_mesh_close(struct dp_ring_mesh *mesh);

#endif
