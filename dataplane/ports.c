/* Port set-up: any ethdev (PCI NIC, net_memif, net_tap, net_af_packet), and
 * the in-process net_ring mesh that CI and the demo use. */
#include <stdio.h>
#include <string.h>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>

#include "ports.h"

#define RX_DESC 1024
#define TX_DESC 1024

int dp_port_start(uint16_t port, uint16_t rx_queues, uint16_t tx_queues,
		  struct rte_mempool *pool, char *err, size_t err_len)
{
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	struct rte_eth_dev_info info;
	int rc = rte_eth_dev_info_get(port, &info);
	if (rc == 0 && (rx_queues > info.max_rx_queues ||
			tx_queues > info.max_tx_queues)) {
		snprintf(err, err_len, "port %u (%s): needs %u rx / %u tx "
			 "queues, has %u / %u", port, info.driver_name,
			 rx_queues, tx_queues, info.max_rx_queues,
			 info.max_tx_queues);
		return -BPX_ECONFIG;
	}
	if (rc == 0 && rx_queues > 1 &&
	    (info.flow_type_rss_offloads & RTE_ETH_RSS_UDP)) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = RTE_ETH_RSS_UDP;
	}
	/* Shared-value sends chain mbufs: ask for it where the port can. */
	if (rc == 0 && (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS))
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	/* The IPv4 header checksum, where the NIC has it (net_ring and
	 * net_memif do not: the software path stays, dp_port_ip_cksum). */
	if (rc == 0 && (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM))
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
	if (rc == 0 && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM))
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
	rc = rc ? rc : rte_eth_dev_configure(port, rx_queues, tx_queues, &conf);
	int socket = rte_eth_dev_socket_id(port);
	socket = socket < 0 ? 0 : socket;
	for (uint16_t q = 0; rc == 0 && q < rx_queues; q++)
		rc = rte_eth_rx_queue_setup(port, q, RX_DESC, (unsigned)socket,
					    NULL, pool);
	for (uint16_t q = 0; rc == 0 && q < tx_queues; q++)
		rc = rte_eth_tx_queue_setup(port, q, TX_DESC, (unsigned)socket,
					    NULL);
	if (rc != 0) {
		snprintf(err, err_len, "port %u: set-up failed: %s", port,
			 rte_strerror(-rc));
		return -BPX_EIO;
	}
	rc = rte_eth_dev_start(port);
	if (rc != 0) {
		snprintf(err, err_len, "port %u: does not start: %s", port,
			 rte_strerror(-rc));
		return -BPX_EBUSY; /* configured: a later start may work */
	}
	/* Replicas check destination MACs themselves. */
	rte_eth_promiscuous_enable(port);
	return 0;
}

bool dp_port_multi_seg(uint16_t port)
{
	struct rte_eth_dev_info info;
	return rte_eth_dev_info_get(port, &info) == 0 &&
	       (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS);
}

bool dp_port_tx_ip_cksum(uint16_t port)
{
	struct rte_eth_dev_info info;
	return rte_eth_dev_info_get(port, &info) == 0 &&
	       (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM);
}

/* Endpoint i owns ring i (its inbox) and a port whose TX queue j feeds
 * ring j: a full mesh with no switch hop. */
int dp_ring_mesh_create(struct dp_ring_mesh *mesh, uint16_t endpoints,
			struct rte_mempool *pool, char *err, size_t err_len)
{
	memset(mesh, 0, sizeof(*mesh));
	if (endpoints == 0 || endpoints > DP_MESH_MAX) {
		snprintf(err, err_len, "ring mesh: %u endpoints, 1..%u allowed",
			 endpoints, DP_MESH_MAX);
		return -BPX_EINVAL;
	}
	mesh->endpoints = endpoints;
	for (uint16_t i = 0; i < endpoints; i++) {
		char name[32];
		snprintf(name, sizeof(name), "bypax_in%u", i);
		mesh->rings[i] = rte_ring_create(name, DP_MESH_RING_SIZE,
						 (int)rte_socket_id(),
						 RING_F_SC_DEQ);
		if (mesh->rings[i] == NULL) {
			snprintf(err, err_len, "ring mesh: cannot create ring "
				 "%s: %s", name, rte_strerror(rte_errno));
			return -BPX_ENOMEM;
		}
	}
	for (uint16_t i = 0; i < endpoints; i++) {
		char name[32];
		snprintf(name, sizeof(name), "bypax_port%u", i);
		int port = rte_eth_from_rings(name, &mesh->rings[i], 1,
					      mesh->rings, endpoints,
					      rte_socket_id());
		if (port < 0) {
			snprintf(err, err_len, "ring mesh: rte_eth_from_rings "
				 "%s: %s", name, rte_strerror(rte_errno));
			return -BPX_EIO;
		}
		mesh->ports[i] = (uint16_t)port;
		int rc = dp_port_start((uint16_t)port, 1, endpoints, pool, err,
				       err_len);
		if (rc != 0)
			return rc;
	}
	return 0;
}

unsigned dp_ring_mesh_drain(struct dp_ring_mesh *mesh)
{
	unsigned freed = 0;
	void *objs[64];
	for (uint16_t i = 0; i < mesh->endpoints; i++) {
		unsigned n;
		while ((n = rte_ring_dequeue_burst(mesh->rings[i], objs, 64,
						   NULL)) > 0) {
			rte_pktmbuf_free_bulk((struct rte_mbuf **)objs, n);
			freed += n;
		}
	}
	return freed;
}

void dp_ring_mesh_close(struct dp_ring_mesh *mesh)
{
	for (uint16_t i = 0; i < mesh->endpoints; i++) {
		rte_eth_dev_stop(mesh->ports[i]);
		rte_eth_dev_close(mesh->ports[i]);
	}
	dp_ring_mesh_drain(mesh);
	for (uint16_t i = 0; i < mesh->endpoints; i++)
		rte_ring_free(mesh->rings[i]);
	memset(mesh, 0, sizeof(*mesh));
}
