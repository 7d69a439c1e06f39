// bypax dataplane micro-benchmarks (Google Benchmark 1.7), beside
// bench_main.cc's consensus ones: the wire codec per message (encode and
// decode of each message type the fast path carries, and the Ethernet/IPv4/
// UDP frame around it), the cluster key's tag per message (sign and verify,
// docs/wire.md "Authentication"), and the rte_ring hand-off between the control
// thread and a worker lcore (struct ctl_cmd one way, struct
// ctl_worker_status the other), in one thread and across two, and the
// clock's TSC to ns conversion (BM_TscToNs, BM_ClockRead: division
// against multiply-shift, ns_per_msg = ns per call).
//
// No EAL: the rings live in ordinary memory (rte_ring_init), as the wire
// codec is pure C. Every benchmark reports ns_per_msg.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "bypax/auth.h"
#include "bypax/consensus.h"
#include "bypax/kv.h"
#include "bypax/wire.h"

extern "C" {
#include "ctl_link.h"
}
#include "tsc_scale.h"

namespace
{

constexpr uint32_t kCluster = 7;
constexpr uint32_t kBatchEntries = 32; // a full slot of 16-byte PUTs

void check(bool ok, const char *what)
{
	if (!ok) {
		std::fprintf(stderr, "bypax-bench-dp: check failed: %s\n", what);
		std::abort();
	}
}

void report_msgs(benchmark::State &state, uint64_t msgs)
{
	state.SetItemsProcessed(static_cast<int64_t>(msgs));
	state.counters["ns_per_msg"] = benchmark::Counter(
		static_cast<double>(msgs) * 1e-9,
		benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// ---- Wire codec ----

// Storage for one message's value (a KV command, a batch, a reply).
struct sample {
	struct px_msg m;
	std::vector<uint8_t> value;
};

std::vector<uint8_t> put_command(uint32_t k)
{
	char key[4];
	std::snprintf(key, sizeof(key), "%03u", k % 1000u);
	uint8_t v[16] = { 0 };
	std::vector<uint8_t> cmd(BPX_KV_CMD_BYTES_MAX);
	int n = bpx_kv_encode(cmd.data(), cmd.size(), BPX_KV_PUT, key, 3, v,
			      sizeof(v), nullptr, 0);
	check(n > 0, "bpx_kv_encode");
	cmd.resize(static_cast<size_t>(n));
	return cmd;
}

// A batch as px_batch_append lays it out: u64 client, u64 seq, u16 length,
// command (big-endian, as the wire carries it opaque anyway).
std::vector<uint8_t> batch_value()
{
	std::vector<uint8_t> v;
	for (uint32_t i = 0; i < kBatchEntries; i++) {
		std::vector<uint8_t> cmd = put_command(i);
		uint8_t hdr[PX_BATCH_ENTRY_HEADER_BYTES] = { 0 };
		hdr[7] = static_cast<uint8_t>(i + 1);
		hdr[15] = static_cast<uint8_t>(i + 1);
		hdr[16] = static_cast<uint8_t>(cmd.size() >> 8);
		hdr[17] = static_cast<uint8_t>(cmd.size());
		v.insert(v.end(), hdr, hdr + sizeof(hdr));
		v.insert(v.end(), cmd.begin(), cmd.end());
	}
	check(v.size() <= PX_VALUE_BYTES_MAX, "batch fits a slot");
	return v;
}

// The fast path's messages, as the leader and its clients exchange them.
sample make_sample(enum px_msg_type type)
{
	sample s;
	std::memset(&s.m, 0, sizeof(s.m));
	s.m.type = static_cast<uint8_t>(type);
	s.m.from = 0;
	s.m.to = 1;
	s.m.ballot = px_ballot_make(3, 0);
	s.m.slot = 123456;
	s.m.commit_index = 123400;
	s.m.applied_index = 123390;
	switch (type) {
	case PX_MSG_REQUEST:
		s.m.from = PX_TO_CLIENT;
		s.m.to = 0;
		s.m.ballot = 0;
		s.m.client_id = 42;
		s.m.seq = 7;
		s.value = put_command(5);
		break;
	case PX_MSG_REPLY:
		s.m.to = PX_TO_CLIENT;
		s.m.client_id = 42;
		s.m.seq = 7;
		s.m.status = PX_REPLY_OK;
		s.value = { BPX_KV_OK, 0, 0 };
		break;
	case PX_MSG_ACCEPT:
		s.value = batch_value();
		break;
	default:
		break;
	}
	s.m.value = s.value.empty() ? nullptr : s.value.data();
	s.m.value_len = static_cast<uint32_t>(s.value.size());
	return s;
}

// ---- Cluster key: a tag per member message (docs/wire.md) ----

enum auth_size { AUTH_ACCEPTED, AUTH_PROMISE_FULL };

// An encoded message followed by room for its tag: an ACCEPTED (72 bytes,
// the typical follower answer) or a PROMISE with a full keyed batch (1456
// bytes, the largest member message: 1472 with its tag).
std::vector<uint8_t> auth_message(enum auth_size size)
{
	static uint8_t value[BPX_AUTH_BATCH_BYTES_MAX];
	sample s = make_sample(PX_MSG_ACCEPTED);
	if (size == AUTH_PROMISE_FULL) {
		s.m.type = PX_MSG_PROMISE;
		s.m.value = value;
		s.m.value_len = BPX_AUTH_BATCH_BYTES_MAX;
	}
	std::vector<uint8_t> buf(BPX_WIRE_PAYLOAD_MAX + BPX_AUTH_TAG_BYTES);
	int n = bpx_wire_encode(buf.data(), buf.size(), kCluster, &s.m);
	check(n > 0, "bpx_wire_encode");
	buf.resize(static_cast<size_t>(n) + BPX_AUTH_TAG_BYTES);
	return buf;
}

struct bpx_auth_key bench_key()
{
	check(bpx_auth_init() == 0, "bpx_auth_init");
	struct bpx_auth_key k;
	k.enabled = true;
	for (unsigned i = 0; i < BPX_AUTH_KEY_BYTES; i++)
		k.bytes[i] = static_cast<uint8_t>(i * 13 + 1);
	return k;
}

// What a sender adds per member message with a key.
void BM_AuthSign(benchmark::State &state, enum auth_size size)
{
	struct bpx_auth_key k = bench_key();
	std::vector<uint8_t> buf = auth_message(size);
	size_t body = buf.size() - BPX_AUTH_TAG_BYTES;
	for (auto _ : state) {
		bpx_auth_sign(&k, buf.data(), body, buf.data() + body);
		benchmark::ClobberMemory();
	}
	state.counters["bytes"] = static_cast<double>(buf.size());
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

// What a receiver adds: the whole receive rule (bpx_auth_check_payload).
void BM_AuthVerify(benchmark::State &state, enum auth_size size)
{
	struct bpx_auth_key k = bench_key();
	std::vector<uint8_t> buf = auth_message(size);
	size_t body = buf.size() - BPX_AUTH_TAG_BYTES;
	bpx_auth_sign(&k, buf.data(), body, buf.data() + body);
	size_t got = 0;
	enum bpx_wire_drop d = BPX_WIRE_OK;
	for (auto _ : state) {
		d = bpx_auth_check_payload(&k, kCluster, buf.data(), buf.size(),
					   &got);
		benchmark::DoNotOptimize(d);
		benchmark::DoNotOptimize(got);
	}
	check(d == BPX_WIRE_OK && got == body, "bpx_auth_check_payload");
	state.counters["bytes"] = static_cast<double>(buf.size());
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

void BM_WireEncode(benchmark::State &state, enum px_msg_type type)
{
	sample s = make_sample(type);
	std::vector<uint8_t> buf(BPX_WIRE_PAYLOAD_MAX);
	int n = 0;
	for (auto _ : state) {
		n = bpx_wire_encode(buf.data(), buf.size(), kCluster, &s.m);
		benchmark::DoNotOptimize(n);
		benchmark::ClobberMemory();
	}
	check(n > 0, "bpx_wire_encode");
	state.counters["bytes"] = n;
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

void BM_WireDecode(benchmark::State &state, enum px_msg_type type)
{
	sample s = make_sample(type);
	std::vector<uint8_t> buf(BPX_WIRE_PAYLOAD_MAX);
	int n = bpx_wire_encode(buf.data(), buf.size(), kCluster, &s.m);
	check(n > 0, "bpx_wire_encode");
	struct px_msg m;
	enum bpx_wire_drop d = BPX_WIRE_OK;
	for (auto _ : state) {
		d = bpx_wire_decode(buf.data(), static_cast<size_t>(n), kCluster,
				    &m);
		benchmark::DoNotOptimize(d);
		benchmark::DoNotOptimize(m);
	}
	check(d == BPX_WIRE_OK && m.type == s.m.type, "bpx_wire_decode");
	state.counters["bytes"] = n;
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

// A whole frame: headers (IPv4 checksum) then encode, and parse (IPv4 and
// UDP checksums) then decode, of a client REQUEST.
std::vector<uint8_t> request_frame(size_t *len)
{
	sample s = make_sample(PX_MSG_REQUEST);
	std::vector<uint8_t> f(BPX_FRAME_MAX);
	int n = bpx_wire_encode(f.data() + BPX_FRAME_HEADER_BYTES,
				BPX_WIRE_PAYLOAD_MAX, kCluster, &s.m);
	check(n > 0, "encode");
	struct bpx_endpoint a = { { 2, 0, 0, 0, 1, 0 }, 0x0a000101, 9100 };
	struct bpx_endpoint b = { { 2, 0, 0, 0, 0, 0 }, 0x0a000001, 9000 };
	bpx_frame_write_headers(f.data(), &a, &b, static_cast<uint16_t>(n), 1);
	*len = BPX_FRAME_HEADER_BYTES + static_cast<size_t>(n);
	return f;
}

void BM_FrameEncode(benchmark::State &state)
{
	sample s = make_sample(PX_MSG_REQUEST);
	std::vector<uint8_t> f(BPX_FRAME_MAX);
	struct bpx_endpoint a = { { 2, 0, 0, 0, 1, 0 }, 0x0a000101, 9100 };
	struct bpx_endpoint b = { { 2, 0, 0, 0, 0, 0 }, 0x0a000001, 9000 };
	uint16_t id = 0;
	for (auto _ : state) {
		int n = bpx_wire_encode(f.data() + BPX_FRAME_HEADER_BYTES,
					BPX_WIRE_PAYLOAD_MAX, kCluster, &s.m);
		bpx_frame_write_headers(f.data(), &a, &b,
					static_cast<uint16_t>(n), id++);
		benchmark::ClobberMemory();
	}
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

void BM_FrameDecode(benchmark::State &state)
{
	size_t len = 0;
	std::vector<uint8_t> f = request_frame(&len);
	struct bpx_frame fr;
	struct px_msg m;
	enum bpx_wire_drop d = BPX_WIRE_OK;
	for (auto _ : state) {
		d = bpx_frame_parse(f.data(), len, &fr);
		if (d == BPX_WIRE_OK)
			d = bpx_wire_decode(fr.payload, fr.payload_len,
					    kCluster, &m);
		benchmark::DoNotOptimize(d);
		benchmark::DoNotOptimize(m);
	}
	check(d == BPX_WIRE_OK, "parse and decode");
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

// The Ethernet, IPv4 and UDP headers alone, as every frame sent writes
// them (the IPv4 header checksum included), and the parse alone, as every
// frame received is parsed (IPv4 header checksum; UDP checksum 0, as
// bypax sends). Issue 11: "IPv4 header checksum in software, a byte pair
// at a time, on every frame sent and received".
void BM_FrameHeaders(benchmark::State &state)
{
	std::vector<uint8_t> f(BPX_FRAME_MAX);
	struct bpx_endpoint a = { { 2, 0, 0, 0, 1, 0 }, 0x0a000101, 9100 };
	struct bpx_endpoint b = { { 2, 0, 0, 0, 0, 0 }, 0x0a000001, 9000 };
	uint16_t id = 0;
	for (auto _ : state) {
		bpx_frame_write_headers(f.data(), &a, &b, 64, id++);
		benchmark::ClobberMemory();
	}
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

// The same headers from a template made once per destination (what the
// dataplane does for its members): copy, lengths, id, incremental IPv4
// checksum (range(0) 1), or the checksum left to the NIC (0).
void BM_FrameHeadersTemplate(benchmark::State &state)
{
	std::vector<uint8_t> f(BPX_FRAME_MAX);
	struct bpx_endpoint a = { { 2, 0, 0, 0, 1, 0 }, 0x0a000101, 9100 };
	struct bpx_endpoint b = { { 2, 0, 0, 0, 0, 0 }, 0x0a000001, 9000 };
	struct bpx_frame_template t;
	bpx_frame_template_init(&t, &a, &b);
	const bool sw = state.range(0) != 0;
	uint16_t id = 0;
	for (auto _ : state) {
		bpx_frame_write_template(f.data(), &t, 64, id++, sw);
		benchmark::ClobberMemory();
	}
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

void BM_FrameParse(benchmark::State &state)
{
	size_t len = 0;
	std::vector<uint8_t> f = request_frame(&len);
	struct bpx_frame fr;
	enum bpx_wire_drop d = BPX_WIRE_OK;
	for (auto _ : state) {
		d = bpx_frame_parse(f.data(), len, &fr);
		benchmark::DoNotOptimize(d);
		benchmark::DoNotOptimize(fr);
	}
	check(d == BPX_WIRE_OK, "parse");
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

// ---- Ring hand-off between the control thread and a worker ----

// An SP/SC element ring of CTL_RING_SIZE, as ctl_daemon.c makes, in
// ordinary memory.
struct ring {
	void *mem = nullptr;
	struct rte_ring *r = nullptr;
	explicit ring(unsigned esize)
	{
		ssize_t sz = rte_ring_get_memsize_elem(esize, CTL_RING_SIZE);
		check(sz > 0, "rte_ring_get_memsize_elem");
		check(posix_memalign(&mem, 64, static_cast<size_t>(sz)) == 0,
		      "memory");
		r = static_cast<struct rte_ring *>(mem);
		check(rte_ring_init(r, "bench", CTL_RING_SIZE,
				    RING_F_SP_ENQ | RING_F_SC_DEQ) == 0,
		      "rte_ring_init");
	}
	~ring() { std::free(mem); }
	ring(const ring &) = delete;
	ring &operator=(const ring &) = delete;
};

// One thread: enqueue then dequeue, per message (the instructions, with
// the ring's cache lines staying in this core).
template <typename T> void BM_RingSameCore(benchmark::State &state)
{
	ring q(sizeof(T));
	T in{}, out{};
	for (auto _ : state) {
		rte_ring_sp_enqueue_elem(q.r, &in, sizeof(T));
		rte_ring_sc_dequeue_elem(q.r, &out, sizeof(T));
		benchmark::DoNotOptimize(out);
	}
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

// Two threads (two cores when there are two): the benchmark thread sends a
// message and waits for the echo; the other echoes through a second ring.
// ns_per_msg is half the round trip: one hand-off, cache lines moving
// between cores included.
template <typename T> void BM_RingCrossCore(benchmark::State &state)
{
	ring to(sizeof(T)), from(sizeof(T));
	std::atomic<bool> stop{ false };
	std::thread echo([&] {
		T m{};
		while (!stop.load(std::memory_order_relaxed)) {
			if (rte_ring_sc_dequeue_elem(to.r, &m, sizeof(T)) != 0) {
				rte_pause();
				continue;
			}
			while (rte_ring_sp_enqueue_elem(from.r, &m, sizeof(T)) !=
			       0)
				rte_pause();
		}
	});
	T in{}, out{};
	for (auto _ : state) {
		while (rte_ring_sp_enqueue_elem(to.r, &in, sizeof(T)) != 0)
			rte_pause();
		while (rte_ring_sc_dequeue_elem(from.r, &out, sizeof(T)) != 0)
			rte_pause();
	}
	stop = true;
	echo.join();
	report_msgs(state, 2 * static_cast<uint64_t>(state.iterations()));
}

// ---- The clock (issue 11) ----

// TSC cycles to ns: the two 64-bit divisions dataplane/dp_common.c had
// against the multiply-shift of dataplane/tsc_scale.h that replaced them,
// on counts that change every call (a constant would fold away), and with
// rte_rdtsc() in front, as dp_now_ns does once per poll pass.
enum tsc_conv { CONV_DIVISION, CONV_MULSHIFT };
constexpr uint64_t kTscHz = 2100000000ull;

uint64_t division_ns(uint64_t hz, uint64_t tsc)
{
	return tsc / hz * 1000000000ull + (tsc % hz) * 1000000000ull / hz;
}

uint64_t convert(enum tsc_conv conv, uint64_t hz, struct dp_tsc_scale s,
		 uint64_t tsc)
{
	return conv == CONV_DIVISION ? division_ns(hz, tsc)
				     : dp_tsc_scale_ns(s, tsc);
}

void BM_TscToNs(benchmark::State &state, enum tsc_conv conv)
{
	uint64_t hz = kTscHz;
	benchmark::DoNotOptimize(hz); // no division by a known constant
	struct dp_tsc_scale s = dp_tsc_scale_make(hz);
	uint64_t tsc = 3600ull * kTscHz, sum = 0; // an hour of uptime
	for (auto _ : state) {
		sum += convert(conv, hz, s, tsc);
		tsc += 977; // about a poll pass apart
	}
	benchmark::DoNotOptimize(sum);
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

void BM_ClockRead(benchmark::State &state, enum tsc_conv conv)
{
	uint64_t hz = kTscHz;
	benchmark::DoNotOptimize(hz);
	struct dp_tsc_scale s = dp_tsc_scale_make(hz);
	uint64_t base = rte_rdtsc(), sum = 0;
	for (auto _ : state)
		sum += convert(conv, hz, s, rte_rdtsc() - base);
	benchmark::DoNotOptimize(sum);
	report_msgs(state, static_cast<uint64_t>(state.iterations()));
}

} // namespace

BENCHMARK_CAPTURE(BM_WireEncode, request, PX_MSG_REQUEST);
BENCHMARK_CAPTURE(BM_WireEncode, accept_batch32, PX_MSG_ACCEPT);
BENCHMARK_CAPTURE(BM_WireEncode, accepted, PX_MSG_ACCEPTED);
BENCHMARK_CAPTURE(BM_WireEncode, commit, PX_MSG_COMMIT);
BENCHMARK_CAPTURE(BM_WireEncode, reply, PX_MSG_REPLY);
BENCHMARK_CAPTURE(BM_WireDecode, request, PX_MSG_REQUEST);
BENCHMARK_CAPTURE(BM_WireDecode, accept_batch32, PX_MSG_ACCEPT);
BENCHMARK_CAPTURE(BM_WireDecode, accepted, PX_MSG_ACCEPTED);
BENCHMARK_CAPTURE(BM_WireDecode, commit, PX_MSG_COMMIT);
BENCHMARK_CAPTURE(BM_WireDecode, reply, PX_MSG_REPLY);
BENCHMARK_CAPTURE(BM_AuthSign, accepted, AUTH_ACCEPTED);
BENCHMARK_CAPTURE(BM_AuthVerify, accepted, AUTH_ACCEPTED);
BENCHMARK_CAPTURE(BM_AuthSign, promise_full, AUTH_PROMISE_FULL);
BENCHMARK_CAPTURE(BM_AuthVerify, promise_full, AUTH_PROMISE_FULL);
BENCHMARK(BM_FrameEncode);
BENCHMARK(BM_FrameDecode);
BENCHMARK(BM_FrameHeaders);
BENCHMARK(BM_FrameHeadersTemplate)->ArgName("sw_checksum")->Arg(1)->Arg(0);
BENCHMARK(BM_FrameParse);
BENCHMARK_TEMPLATE(BM_RingSameCore, struct ctl_cmd);
BENCHMARK_TEMPLATE(BM_RingSameCore, struct ctl_worker_status);
BENCHMARK_TEMPLATE(BM_RingCrossCore, struct ctl_cmd)->UseRealTime();
BENCHMARK_TEMPLATE(BM_RingCrossCore, struct ctl_worker_status)->UseRealTime();

BENCHMARK_CAPTURE(BM_TscToNs, division, CONV_DIVISION);
BENCHMARK_CAPTURE(BM_TscToNs, mulshift, CONV_MULSHIFT);
BENCHMARK_CAPTURE(BM_ClockRead, division, CONV_DIVISION);
BENCHMARK_CAPTURE(BM_ClockRead, mulshift, CONV_MULSHIFT);

BENCHMARK_MAIN();
