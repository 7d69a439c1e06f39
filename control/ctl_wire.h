/* The control plane's heartbeat datagram (UDP between members' control
 * addresses). Pure codec, like the dataplane's wire.c. Layout, big-endian:
 *   0 u16 magic "BH"   2 u8 version 1   3 u8 from   4 u32 cluster id
 *   8 u8 leader_hint   9 u8 ready      10 u8 role   11 u8 preferred
 *  12 u32 alive_mask  16 u64 seq       24 u64 promised ballot
 *  32 u64 commit index                 40 u64 applied index
 *  48 u64 sender's last failover age in ms (UINT64_MAX: none seen)
 * 56 bytes in all; anything else is dropped. */
#ifndef BYPAX_CTL_WIRE_H
#define BYPAX_CTL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "omega.h"

#define CTL_HB_MAGIC 0x4248u
#define CTL_HB_VERSION 1u
#define CTL_HB_BYTES 56u

/* A heartbeat and the replica status it carries (for bypaxctl status). */
struct ctl_hb_msg {
	struct ctl_heartbeat hb;
	uint8_t role;
	uint64_t promised;
	uint64_t commit_index;
	uint64_t applied_index;
	uint64_t failover_age_ms;
};

void ctl_hb_encode(uint8_t buf[CTL_HB_BYTES], uint32_t cluster_id,
		   const struct ctl_hb_msg *m);
/* Returns 0, or -1 for a datagram that is not a valid heartbeat of this
 * cluster (wrong length, magic, version, cluster). Field ranges are checked
 * by ctl_omega_receive. */
int ctl_hb_decode(const uint8_t *buf, size_t len, uint32_t cluster_id,
		  struct ctl_hb_msg *m);
/* Returns 0 and the datagram's cluster id for one laid out as a heartbeat
 * (length, magic, version), of any cluster; -1 otherwise. It tells another
 * cluster's heartbeat, worth a log line, from noise. */
int ctl_hb_cluster(const uint8_t *buf, size_t len, uint32_t *cluster_id);

#endif
