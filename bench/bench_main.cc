// bypax benchmarks (Google Benchmark 1.7): the consensus core end to end
// on an in-memory cluster (bench_cluster.h), and its hot parts alone.
//
// Every benchmark reports items_per_second and ns_per_req (or ns_per_op):
// the time per committed request, encoded entry, lookup or KV command.
// --benchmark_format=json prints them, with the other counters, as JSON.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include <benchmark/benchmark.h>

#include "bypax/consensus.h"
#include "bypax/kv.h"

#include "bench_cluster.h"

// Internal access for the micro-benchmarks (the session table, the batch
// codec); a C header without its own extern "C".
extern "C" {
#include "internal.h"
}

namespace
{

// Requests one iteration of BM_Commit commits.
constexpr uint64_t kCommitRequests = 4096;
constexpr uint32_t kSessions = 4096;
constexpr uint32_t kBatchEntries = 32; // 43-byte PUTs: 1376 bytes, one slot

// Always on, like the C side's checks: a number from a broken run is worse
// than none.
void check(bool ok, const char *what)
{
	if (!ok) {
		std::fprintf(stderr, "bypax-bench: check failed: %s\n", what);
		std::abort();
	}
}

uint64_t iterations(const benchmark::State &state)
{
	return static_cast<uint64_t>(state.iterations());
}

// items_per_second, and its inverse in nanoseconds: a rate counter of
// items * 1e-9, inverted, is (seconds / items) * 1e9.
void report_items(benchmark::State &state, uint64_t items, const char *name)
{
	state.SetItemsProcessed(static_cast<int64_t>(items));
	state.counters[name] = benchmark::Counter(
		static_cast<double>(items) * 1e-9,
		benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// A KV PUT (or GET) of key "%03u" % k with a 16-byte value.
std::vector<uint8_t> kv_command(enum bpx_kv_op op, uint32_t k)
{
	char key[4];
	std::snprintf(key, sizeof(key), "%03u", k % 1000u);
	uint8_t value[BC_VALUE_BYTES] = { 0 };
	std::vector<uint8_t> cmd(BPX_KV_CMD_BYTES_MAX);
	bool put = op == BPX_KV_PUT;
	int len = bpx_kv_encode(cmd.data(), cmd.size(), op, key, 3,
				put ? value : nullptr, put ? sizeof(value) : 0,
				nullptr, 0);
	check(len > 0, "bpx_kv_encode");
	cmd.resize(static_cast<size_t>(len));
	return cmd;
}

// ---- End to end ----

void run_commit(benchmark::State &state, struct bc_cluster *c, uint32_t batch)
{
	if (c == nullptr) {
		state.SkipWithError("bc_new failed");
		return;
	}
	// Warm up outside the timing: page in the queues, sessions and KV
	// entries, so every iteration measures the same steady state.
	check(bc_run_requests(c, kCommitRequests) == kCommitRequests,
	      "warm-up");
	struct bc_stats before, after;
	bc_get_stats(c, &before);
	uint64_t committed = 0;
	for (auto _ : state)
		committed += bc_run_requests(c, kCommitRequests);
	bc_get_stats(c, &after);
	bc_free(c);
	check(committed == kCommitRequests * iterations(state),
	      "every request committed");

	report_items(state, committed, "ns_per_req");
	const auto n = static_cast<double>(committed);
	const auto slots = static_cast<double>(after.slots_proposed -
					       before.slots_proposed);
	state.counters["batch"] = batch;
	state.counters["req_per_slot"] =
		static_cast<double>(after.batch_requests_total -
				    before.batch_requests_total) /
		slots;
	state.counters["msgs_per_req"] =
		static_cast<double>(after.msgs_delivered -
				    before.msgs_delivered) /
		n;
	state.counters["retransmits"] =
		static_cast<double>(after.retransmits - before.retransmits);
	state.counters["drops"] =
		static_cast<double>(after.drops - before.drops);
}

// Commits through a 3-replica cluster; the argument is the batch size.
void BM_Commit(benchmark::State &state)
{
	const auto batch = static_cast<uint32_t>(state.range(0));
	run_commit(state, bc_new(3, batch, 0), batch);
}

void BM_Commit5(benchmark::State &state)
{
	const auto batch = static_cast<uint32_t>(state.range(0));
	run_commit(state, bc_new(5, batch, 0), batch);
}

// BM_Commit/32 over range(0) keys, each in the stores before timing (a
// million keys take a few seconds to set up per run), with the learner's
// prefetch hint (range(1) 1) or with the store's ops lacking it (0): the
// A/B of docs/performance.md, "KV batch prefetch".
void BM_CommitKeys(benchmark::State &state)
{
	const auto keys = static_cast<uint32_t>(state.range(0));
	run_commit(state, bc_new_keys(3, 32, 0, keys, state.range(1) != 0), 32);
}

// ---- The parts ----

// px_session_find over a full table of kSessions (client ids 1..N, as the
// bench cluster and most clients number them), in a scattered order.
void BM_SessionLookup(benchmark::State &state, bool hit)
{
	std::vector<uint64_t> mem(px_session_mem_size(kSessions) / 8 + 1);
	struct px_session_table table;
	px_session_init(&table, mem.data(), kSessions);
	for (uint64_t id = 1; id <= kSessions; id++)
		px_session_insert(&table, id, id);
	std::vector<uint64_t> order(kSessions);
	for (uint32_t i = 0; i < kSessions; i++) {
		// 2521 is odd: i * 2521 mod 4096 visits every id once.
		uint64_t id = static_cast<uint64_t>(i) * 2521u % kSessions + 1;
		order[i] = hit ? id : id + kSessions;
	}
	uint32_t i = 0;
	uint64_t found = 0;
	for (auto _ : state) {
		const struct px_session *s = px_session_find(&table, order[i]);
		// The const overload: GCC 12 with -fsanitize=address
		// miscompiles 1.7's non-const one ("+m,r") for a pointer,
		// reading s back from a different stack slot.
		benchmark::DoNotOptimize(static_cast<const void *>(s));
		found += s != nullptr;
		i = (i + 1) % kSessions;
	}
	check(found == (hit ? iterations(state) : 0), "lookups");
	report_items(state, iterations(state), "ns_per_req");
}

// The leader's session work for one write of a client with a session, as
// consensus/proposer.c and learner.c do it: the lookup when the request
// arrives (is it a retry?), then at apply the lookup, the seq check, the
// touch (most recently used) and the 3-byte reply cached for a retry.
// range(0) clients take turns in a scattered order, kBatchEntries requests
// per slot, in a table sized as bypax-cluster sizes it (8192 sessions).
// Issue 11: "At 4,096 client lanes the session table is 20% of the leader."
constexpr uint32_t kClusterSessionMax = 8192;

struct session_bench {
	std::vector<uint64_t> mem;
	struct px_session_table table;
	std::vector<uint64_t> order; // client ids, in the order they ask
	uint64_t slot = 1;
};

void session_bench_init(struct session_bench &b, uint32_t clients,
			uint32_t cap)
{
	b.mem.assign(px_session_mem_size(cap) / 8 + 1, 0);
	px_session_init(&b.table, b.mem.data(), cap);
	// Opened kBatchEntries to a slot, as OPENs through the log are.
	for (uint64_t id = 1; id <= clients; id++) {
		px_session_insert(&b.table, id | PX_SESSION_ID_BIT, b.slot);
		b.slot += id % kBatchEntries == 0;
	}
	b.order.resize(clients);
	for (uint32_t i = 0; i < clients; i++) {
		// 2521 is odd: i * 2521 mod 2^k visits every id once.
		uint64_t id = static_cast<uint64_t>(i) * 2521u % clients + 1;
		b.order[i] = id | PX_SESSION_ID_BIT;
	}
}

void BM_SessionRequest(benchmark::State &state)
{
	const auto clients = static_cast<uint32_t>(state.range(0));
	struct session_bench b;
	session_bench_init(b, clients, kClusterSessionMax);
	const uint8_t reply[3] = { 0, 0, 0 };
	uint32_t i = 0, in_slot = 0;
	uint64_t seq = 1, replied = 0;
	for (auto _ : state) {
		uint64_t id = b.order[i];
		const struct px_session *at_leader =
			px_session_find(&b.table, id);
		check(at_leader == nullptr || at_leader->last_seq < seq,
		      "a new request");
		struct px_session *s = px_session_find(&b.table, id);
		s->last_seq = seq;
		px_session_touch(&b.table, s, b.slot);
		px_session_set_reply(&b.table, s, PX_REPLY_OK, reply,
				     sizeof(reply));
		const uint8_t *cached = px_session_reply(&b.table, s);
		benchmark::DoNotOptimize(cached);
		replied += cached[0] == 0;
		if (++in_slot == kBatchEntries) {
			in_slot = 0;
			b.slot++;
		}
		if (++i == clients) {
			i = 0;
			seq++;
		}
	}
	check(replied == iterations(state), "replies");
	report_items(state, iterations(state), "ns_per_req");
}

// An OPEN into a full table of range(0) sessions: the least recently
// applied session is evicted (pick_victim) and the new one inserted.
void BM_SessionOpenFull(benchmark::State &state)
{
	const auto sessions = static_cast<uint32_t>(state.range(0));
	struct session_bench b;
	session_bench_init(b, sessions, sessions);
	uint64_t next = sessions + 1;
	for (auto _ : state) {
		struct px_session *s = px_session_insert(
			&b.table, next++ | PX_SESSION_ID_BIT, ++b.slot);
		benchmark::DoNotOptimize(static_cast<void *>(s));
	}
	check(b.table.count == sessions, "the table stays full");
	report_items(state, iterations(state), "ns_per_req");
}

// A full slot's value: kBatchEntries PUTs from distinct clients.
std::vector<struct px_pending> batch_requests()
{
	std::vector<struct px_pending> reqs(kBatchEntries);
	for (uint32_t i = 0; i < kBatchEntries; i++) {
		std::vector<uint8_t> cmd = kv_command(BPX_KV_PUT, i);
		reqs[i].client_id = i + 1;
		reqs[i].seq = 1000 + i;
		reqs[i].len = static_cast<uint32_t>(cmd.size());
		std::copy(cmd.begin(), cmd.end(), reqs[i].cmd);
	}
	return reqs;
}

// px_batch_append, per request: a slot's value filled from the queue.
void BM_BatchEncode(benchmark::State &state)
{
	std::vector<struct px_pending> reqs = batch_requests();
	uint8_t value[PX_VALUE_BYTES_MAX];
	uint32_t len = 0;
	for (auto _ : state) {
		len = 0;
		for (const struct px_pending &p : reqs) {
			len = px_batch_append(value, len, PX_VALUE_BYTES_MAX,
					      &p);
		}
		benchmark::DoNotOptimize(value);
		benchmark::ClobberMemory();
	}
	check(len == kBatchEntries *
			      (PX_BATCH_ENTRY_HEADER_BYTES + reqs[0].len),
	      "every request fits the batch");
	report_items(state, iterations(state) * kBatchEntries, "ns_per_req");
}

// px_batch_next, per request: what every replica does to apply a slot.
void BM_BatchDecode(benchmark::State &state)
{
	std::vector<struct px_pending> reqs = batch_requests();
	uint8_t value[PX_VALUE_BYTES_MAX];
	uint32_t len = 0;
	for (const struct px_pending &p : reqs)
		len = px_batch_append(value, len, sizeof(value), &p);
	uint64_t entries = 0;
	for (auto _ : state) {
		struct px_batch_iter it;
		struct px_batch_entry e;
		px_batch_iter_init(&it, value, len);
		while (px_batch_next(&it, &e) == 1) {
			benchmark::DoNotOptimize(e);
			entries++;
		}
	}
	check(entries == iterations(state) * kBatchEntries, "decoded all");
	report_items(state, entries, "ns_per_req");
}

// The KV state machine's apply() of a PUT (overwriting) or a GET, over
// 1000 keys that are all present.
void BM_KvApply(benchmark::State &state, enum bpx_kv_op op)
{
	const struct bpx_sm_ops *kv = bpx_kv_ops();
	void *sm = kv->create(nullptr);
	check(sm != nullptr, "kv create");
	std::vector<std::vector<uint8_t>> cmds;
	uint8_t reply[BPX_SM_REPLY_BYTES_MAX];
	for (uint32_t k = 0; k < 1000; k++) {
		std::vector<uint8_t> put = kv_command(BPX_KV_PUT, k);
		int len = kv->apply(sm, put.data(),
				    static_cast<uint32_t>(put.size()), reply,
				    sizeof(reply));
		check(len > 0 && reply[0] == BPX_KV_OK, "preload");
		cmds.push_back(kv_command(op, k));
	}
	uint32_t k = 0;
	int len = 0;
	for (auto _ : state) {
		const std::vector<uint8_t> &cmd = cmds[k];
		len = kv->apply(sm, cmd.data(),
				static_cast<uint32_t>(cmd.size()), reply,
				sizeof(reply));
		benchmark::DoNotOptimize(reply);
		k = k + 1 == 1000 ? 0 : k + 1;
	}
	check(len > 0 && reply[0] == BPX_KV_OK, "apply");
	kv->destroy(sm);
	report_items(state, iterations(state), "ns_per_op");
}

uint64_t tsc()
{
#if defined(__x86_64__)
	return __rdtsc();
#else
	return 0;
#endif
}

// A PUT of 16-byte key i ("kvbench-" and i, 8 bytes little-endian) with a
// 16-byte value.
std::vector<uint8_t> kv_put16(uint64_t i)
{
	uint8_t key[16] = { 'k', 'v', 'b', 'e', 'n', 'c', 'h', '-' };
	uint8_t value[16] = { 0 };
	std::memcpy(key + 8, &i, sizeof(i));
	std::vector<uint8_t> cmd(BPX_KV_CMD_BYTES_MAX);
	int len = bpx_kv_encode(cmd.data(), cmd.size(), BPX_KV_PUT, key,
				sizeof(key), value, sizeof(value), nullptr, 0);
	check(len > 0, "bpx_kv_encode");
	cmd.resize(static_cast<size_t>(len));
	return cmd;
}

// A store of n 16-byte keys with 16-byte values, sized for exactly them
// and filled (so pre-faulted); built once per n and kept, as filling ten
// million keys takes seconds.
void *kv_filled(uint64_t n)
{
	static std::map<uint64_t, void *> stores;
	auto it = stores.find(n);
	if (it != stores.end())
		return it->second;
	char args[96];
	std::snprintf(args, sizeof(args), "capacity=%llu,bytes=%llu",
		      static_cast<unsigned long long>(n),
		      static_cast<unsigned long long>(
			      n * bpx_kv_entry_bytes(16, 16)));
	const struct bpx_sm_ops *kv = bpx_kv_ops();
	void *sm = kv->create(args);
	check(sm != nullptr, "kv create");
	uint8_t reply[BPX_SM_REPLY_BYTES_MAX];
	for (uint64_t i = 0; i < n; i++) {
		std::vector<uint8_t> put = kv_put16(i);
		int len = kv->apply(sm, put.data(),
				    static_cast<uint32_t>(put.size()), reply,
				    sizeof(reply));
		check(len > 0 && reply[0] == BPX_KV_OK, "fill");
	}
	stores[n] = sm;
	return sm;
}

// Overwriting PUTs of 16-byte values over a store of range(0) keys, in an
// order that strides across all of them (issue 11: leader cycles per op at
// 1M and 10M keys against 1,000). range(1) > 1 applies them in batches of
// that many after bpx_kv_prefetch of the batch, as a committed slot's
// requests could be. Reports ns_per_op and cycles_per_op (TSC).
void BM_KvPutKeys(benchmark::State &state)
{
	const auto n = static_cast<uint64_t>(state.range(0));
	const auto batch = static_cast<uint32_t>(state.range(1));
	check(batch >= 1 && batch <= BPX_KV_PREFETCH_MAX, "batch");
	void *sm = kv_filled(n);
	const struct bpx_sm_ops *kv = bpx_kv_ops();
	// One command buffer per place in a batch, its key's index bytes
	// rewritten in place: a table of commands large enough to miss the
	// caches as the store does would itself stream through them.
	std::vector<std::vector<uint8_t>> cmds;
	for (uint32_t b = 0; b < batch; b++)
		cmds.push_back(kv_put16(0));
	const size_t index_at = BPX_KV_CMD_HEADER_BYTES + 8;
	uint64_t k = 0, stride = 2654435761u % n;
	while (n > 1 && std::__gcd(stride, n) != 1)
		stride = (stride + 1) % n;
	const uint8_t *ptrs[BPX_KV_PREFETCH_MAX];
	uint32_t lens[BPX_KV_PREFETCH_MAX];
	uint8_t reply[BPX_SM_REPLY_BYTES_MAX];
	for (uint32_t b = 0; b < batch; b++) {
		ptrs[b] = cmds[b].data();
		lens[b] = static_cast<uint32_t>(cmds[b].size());
	}
	uint64_t ops = 0, cycles = 0;
	for (auto _ : state) {
		uint64_t t0 = tsc();
		for (uint32_t b = 0; b < batch; b++) {
			std::memcpy(cmds[b].data() + index_at, &k, sizeof(k));
			k += stride;
			k = k >= n ? k - n : k;
		}
		if (batch > 1)
			bpx_kv_prefetch(sm, ptrs, lens, batch);
		for (uint32_t b = 0; b < batch; b++) {
			int len = kv->apply(sm, ptrs[b], lens[b], reply,
					    sizeof(reply));
			benchmark::DoNotOptimize(len);
		}
		cycles += tsc() - t0;
		ops += batch;
	}
	check(reply[0] == BPX_KV_OK, "apply");
	report_items(state, ops, "ns_per_op");
	state.counters["cycles_per_op"] =
		static_cast<double>(cycles) / static_cast<double>(ops);
}

} // namespace

BENCHMARK(BM_KvPutKeys)
	->ArgNames({ "keys", "batch" })
	->Args({ 1000, 1 })
	->Args({ 1000000, 1 })
	->Args({ 10000000, 1 })
	->Args({ 1000, 32 })
	->Args({ 1000000, 32 })
	->Args({ 10000000, 32 });
BENCHMARK(BM_Commit)->Arg(1)->Arg(8)->Arg(32)->Arg(64)->Unit(
	benchmark::kMicrosecond);
BENCHMARK(BM_Commit5)->Arg(1)->Arg(32)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CommitKeys)
	->ArgNames({ "keys", "prefetch" })
	->Args({ 1000, 0 })
	->Args({ 1000, 1 })
	->Args({ 1000000, 0 })
	->Args({ 1000000, 1 })
	->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SessionLookup, hit, true);
BENCHMARK_CAPTURE(BM_SessionLookup, miss, false);
BENCHMARK(BM_SessionRequest)->ArgName("clients")->Arg(512)->Arg(4096);
BENCHMARK(BM_SessionOpenFull)->ArgName("sessions")->Arg(512)->Arg(4096);
BENCHMARK(BM_BatchEncode);
BENCHMARK(BM_BatchDecode);
BENCHMARK_CAPTURE(BM_KvApply, put, BPX_KV_PUT);
BENCHMARK_CAPTURE(BM_KvApply, get, BPX_KV_GET);

BENCHMARK_MAIN();
