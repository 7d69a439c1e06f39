-- wrk script: etcd v3 JSON gateway writes, POST /v3/kv/put with
-- {"key": base64, "value": base64}. Keys cycle over KEYS names like
-- bypax-cluster's ("k%06u"), values are VALUE_BYTES bytes; both from the
-- environment. done() prints one JSON line: requests, errors and the
-- latency percentiles wrk measured (microseconds), for scripts/bench.

local keys = tonumber(os.getenv("BPX_ETCD_KEYS") or "1000")
local value_bytes = tonumber(os.getenv("BPX_ETCD_VALUE_BYTES") or "16")

local b64chars =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(data)
	return ((data:gsub(".", function(x)
		local r, b = "", x:byte()
		for i = 8, 1, -1 do
			r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0")
		end
		return r
	end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
		if #x < 6 then
			return ""
		end
		local c = 0
		for i = 1, 6 do
			c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0)
		end
		return b64chars:sub(c + 1, c + 1)
	end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

-- Bodies are made once: encoding per request would make wrk the
-- bottleneck, not etcd.
local bodies = {}
local value = b64(string.rep("a", value_bytes))
for k = 0, keys - 1 do
	bodies[k + 1] = '{"key":"' .. b64(string.format("k%06u", k)) ..
		'","value":"' .. value .. '"}'
end

local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function setup(thread)
	thread:set("offset", math.random(0, keys - 1))
end

function request()
	counter = counter + 1
	local body = bodies[(counter + (offset or 0)) % keys + 1]
	return wrk.format("POST", "/v3/kv/put", nil, body)
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		'BPX_WRK_JSON {"requests":%d,"duration_us":%d,' ..
		'"errors_connect":%d,"errors_read":%d,"errors_write":%d,' ..
		'"errors_status":%d,"errors_timeout":%d,' ..
		'"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
		summary.requests, summary.duration, e.connect, e.read, e.write,
		e.status, e.timeout, latency:percentile(50),
		latency:percentile(99), latency:percentile(99.9), latency.max,
		latency.mean))
end
