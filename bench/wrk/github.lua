-- GitHub-style signed webhooks for wrk: POST /webhooks/github, ~1.5 KB JSON.
--
-- Every request carries a distinct delivery id (X-GitHub-Delivery) that is
-- also the last field of the body, and X-Hub-Signature-256 =
-- sha256=<hex HMAC-SHA256(secret, body)> computed here (SHA-256 on LuaJIT's
-- `bit` library). The varying id sits at the END of the body, and the fixed
-- prefix is padded to a multiple of 64 bytes, so the SHA-256 state after
-- (key XOR ipad || prefix) is computed once per thread: a request then
-- costs two compressions (the tail block, and the outer hash of the digest
-- from the precomputed key XOR opad state), not ~25.
--
-- Ids are <nonce>-<thread>-4000-8000-<counter>: the nonce (8 hex digits,
-- from /dev/urandom unless given) differs per run, the thread number per wrk
-- thread, the counter per request, so ids never repeat across threads or runs.
--
-- Options, as `wrk ... -s github.lua URL -- key=value ...` or environment:
--   secret=S  (BENCH_SECRET)  default bench-github-secret
--   mode=M    (BENCH_MODE)    new (default): a fresh id per request;
--                             dup: each thread cycles over `dupset` ids, fully
--                             precomputed; run it once to store them, then
--                             again with the same nonce for duplicates only
--   nonce=N   (BENCH_NONCE)   8 hex digits; fixed for dup preload + measure
--   dupset=K  (BENCH_DUPSET)  ids per thread in dup mode, default 16
--   check=1   (BENCH_CHECK)   read every response: count 200s and
--                             "duplicate":true/false (slower; for verifying)
-- done() prints one line `BENCH {json}` for scripts: requests, rps, latency
-- percentiles in microseconds, errors, and the check counters.

local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit, tohex = bit.rshift, bit.lshift, bit.ror, bit.tobit, bit.tohex
local byte, char, rep, format = string.byte, string.char, string.rep, string.format

---------------------------------------------------------------- SHA-256

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
for i = 1, 64 do K[i] = tobit(K[i]) end

local H0 = {
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}
for i = 1, 8 do H0[i] = tobit(H0[i]) end

local W = {} -- message schedule, reused by every compression

-- Compresses the 64-byte block of `s` starting at byte `off` (1-based) into
-- the state `h` (8 int32s, updated in place).
local function compress(h, s, off)
  for j = 1, 16 do
    local a, b, c, d = byte(s, off, off + 3)
    W[j] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
    off = off + 4
  end
  for j = 17, 64 do
    local w15, w2 = W[j - 15], W[j - 2]
    local s0 = bxor(ror(w15, 7), ror(w15, 18), rshift(w15, 3))
    local s1 = bxor(ror(w2, 17), ror(w2, 19), rshift(w2, 10))
    W[j] = tobit(W[j - 16] + s0 + W[j - 7] + s1)
  end
  local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
  for j = 1, 64 do
    local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
    local ch = bxor(band(e, f), band(bnot(e), g))
    local t1 = tobit(hh + S1 + ch + K[j] + W[j])
    local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
    local maj = bxor(band(a, b), band(a, c), band(b, c))
    local t2 = tobit(S0 + maj)
    hh, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
  end
  h[1] = tobit(h[1] + a); h[2] = tobit(h[2] + b); h[3] = tobit(h[3] + c); h[4] = tobit(h[4] + d)
  h[5] = tobit(h[5] + e); h[6] = tobit(h[6] + f); h[7] = tobit(h[7] + g); h[8] = tobit(h[8] + hh)
end

local function copy8(h)
  return { h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8] }
end

-- SHA-256 padding for a message whose total length is `total` bytes, of
-- which `partial` trailing bytes are not yet compressed.
local function padding(partial, total)
  local zeros = (55 - partial) % 64
  local bits = total * 8
  local hi, lo = math.floor(bits / 4294967296), bits % 4294967296
  return "\128" .. rep("\0", zeros)
    .. char(band(rshift(hi, 24), 255), band(rshift(hi, 16), 255), band(rshift(hi, 8), 255), band(hi, 255))
    .. char(band(rshift(lo, 24), 255), band(rshift(lo, 16), 255), band(rshift(lo, 8), 255), band(lo, 255))
end

-- Finishes a hash from state `h` (already holding `done` bytes, a multiple of
-- 64) over the remaining bytes `rest`; returns the new state.
local function finish(h, done, rest)
  h = copy8(h)
  local msg = rest .. padding(#rest % 64, done + #rest)
  for off = 1, #msg, 64 do compress(h, msg, off) end
  return h
end

local function state_bytes(h)
  local out = {}
  for i = 1, 8 do
    local x = h[i]
    out[i] = char(band(rshift(x, 24), 255), band(rshift(x, 16), 255), band(rshift(x, 8), 255), band(x, 255))
  end
  return table.concat(out)
end

local function state_hex(h)
  return tohex(h[1]) .. tohex(h[2]) .. tohex(h[3]) .. tohex(h[4])
    .. tohex(h[5]) .. tohex(h[6]) .. tohex(h[7]) .. tohex(h[8])
end

---------------------------------------------------------------- HMAC

-- Key blocks for HMAC: (key XOR ipad) and (key XOR opad), 64 bytes each.
local function key_blocks(key)
  if #key > 64 then key = state_bytes(finish(H0, 0, key)) end
  key = key .. rep("\0", 64 - #key)
  local i, o = {}, {}
  for j = 1, 64 do
    local k = byte(key, j)
    i[j] = char(bxor(k, 0x36))
    o[j] = char(bxor(k, 0x5c))
  end
  return table.concat(i), table.concat(o)
end

-- Plain HMAC-SHA256 (no precomputation), for the self-test.
local function hmac_hex(key, msg)
  local ipad, opad = key_blocks(key)
  local inner = state_bytes(finish(H0, 0, ipad .. msg))
  return state_hex(finish(H0, 0, opad .. inner))
end

-- A signer for bodies `prefix .. tail`, where #prefix is a multiple of 64:
-- the inner state after (ipad || prefix) and the outer state after opad are
-- computed here once.
local function signer(key, prefix)
  assert(#prefix % 64 == 0, "prefix must end on a 64-byte boundary")
  local ipad, opad = key_blocks(key)
  local inner = copy8(H0)
  compress(inner, ipad, 1)
  for off = 1, #prefix, 64 do compress(inner, prefix, off) end
  local outer = copy8(H0)
  compress(outer, opad, 1)
  local inner_len = 64 + #prefix
  return function(tail)
    local digest = state_bytes(finish(inner, inner_len, tail))
    return state_hex(finish(outer, 64, digest))
  end
end

---------------------------------------------------------------- body

-- A trimmed GitHub push event; the delivery id is appended last.
local BODY_START = [[{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246",]]
  .. [["after":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5","created":false,"deleted":false,"forced":false,]]
  .. [["compare":"https://github.com/octo-org/octo-repo/compare/6113728f27ae...59b20b8d5c6f",]]
  .. [["commits":[{"id":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5","tree_id":"f9d2a07e9488b91af2641b26b9407fe22a451433",]]
  .. [["distinct":true,"message":"Update README.md with the load test notes","timestamp":"2024-05-14T10:21:07Z",]]
  .. [["url":"https://github.com/octo-org/octo-repo/commit/59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",]]
  .. [["author":{"name":"Monalisa Octocat","email":"mona@github.com","username":"octocat"},]]
  .. [["added":[],"removed":[],"modified":["README.md"]}],]]
  .. [["repository":{"id":186853002,"node_id":"MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=","name":"octo-repo",]]
  .. [["full_name":"octo-org/octo-repo","private":false,"owner":{"name":"octo-org","email":null,"login":"octo-org",]]
  .. [["id":6811672,"type":"Organization","site_admin":false},"html_url":"https://github.com/octo-org/octo-repo",]]
  .. [["url":"https://github.com/octo-org/octo-repo","created_at":1557933565,"updated_at":"2024-05-14T10:20:11Z",]]
  .. [["pushed_at":1715682067,"size":12,"stargazers_count":3,"watchers_count":3,"language":"Rust",]]
  .. [["default_branch":"main","master_branch":"main","organization":"octo-org"},]]
  .. [["pusher":{"name":"octocat","email":"mona@github.com"},]]
  .. [["sender":{"login":"octocat","id":583231,"node_id":"MDQ6VXNlcjU4MzIzMQ==","type":"User"},]]
local ID_KEY = [["hookyard_bench_delivery":"]]
-- JSON whitespace pads the prefix to the block boundary the midstate needs,
-- and to ~1.5 KB in total (the tail adds 38 bytes).
local PREFIX_BLOCKS = 23
local pad = PREFIX_BLOCKS * 64 - #BODY_START - #ID_KEY
assert(pad >= 0, "BODY_START is longer than the prefix blocks")
local PREFIX = BODY_START .. rep(" ", pad) .. ID_KEY

local function delivery_id(nonce, tid, n)
  -- 36 characters, GUID-shaped; all fields fixed width so the tail length
  -- (and so its padding) never changes.
  return nonce .. "-" .. tohex(tid, 4) .. "-4000-8000-" .. "0000" .. tohex(n)
end

local function tail_of(id) return id .. '"}' end

---------------------------------------------------------------- options

local function option(args, key, env, default)
  for _, a in ipairs(args or {}) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k == key then return v end
  end
  local e = env and os.getenv(env)
  if e ~= nil and e ~= "" then return e end
  return default
end

local function random_nonce()
  local f = io.open("/dev/urandom", "rb")
  if f then
    local b = f:read(4)
    f:close()
    local a, c, d, e = byte(b, 1, 4)
    return tohex(bor(lshift(a, 24), lshift(c, 16), lshift(d, 8), e))
  end
  return tohex(os.time())
end

-- Known answers, checked once in the main state before any thread starts.
local function self_test()
  -- GitHub's documented example (docs: validating webhook deliveries).
  local got = hmac_hex("It's a Secret to Everybody", "Hello, World!")
  assert(got == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    "HMAC self-test failed: " .. got)
  -- RFC 4231 test case 6 (key longer than a block).
  got = hmac_hex(rep("\170", 131), "Test Using Larger Than Block-Size Key - Hash Key First")
  assert(got == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    "HMAC long-key self-test failed: " .. got)
  -- The midstate path agrees with the plain one on a real body.
  local id = delivery_id("0badcafe", 1, 7)
  local sign = signer("bench-github-secret", PREFIX)
  assert(sign(tail_of(id)) == hmac_hex("bench-github-secret", PREFIX .. tail_of(id)),
    "midstate HMAC disagrees with plain HMAC")
end

---------------------------------------------------------------- wrk hooks

local threads = {}
local next_tid = 0
local run_nonce = nil

function setup(thread)
  if next_tid == 0 then self_test() end
  next_tid = next_tid + 1
  -- One nonce for all threads of this run (a nonce= argument, read in each
  -- thread's init, overrides it).
  run_nonce = run_nonce or option(nil, "nonce", "BENCH_NONCE", nil) or random_nonce()
  thread:set("tid", next_tid)
  thread:set("nonce", run_nonce)
  table.insert(threads, thread)
end

local sign, counter, mode, dup_requests, dup_n, check
-- Globals, not locals: done() reads them from each thread with thread:get.
stat_ok, stat_other, stat_dup, stat_new = 0, 0, 0, 0

function init(args)
  local secret = option(args, "secret", "BENCH_SECRET", "bench-github-secret")
  mode = option(args, "mode", "BENCH_MODE", "new")
  assert(mode == "new" or mode == "dup", "mode must be new or dup, got " .. tostring(mode))
  check = option(args, "check", "BENCH_CHECK", "0") == "1"
  -- `nonce` and `tid` are globals set by setup() through thread:set.
  nonce = option(args, "nonce", nil, nil) or nonce or random_nonce()
  tid = tid or 1
  sign = signer(secret, PREFIX)
  counter = 0
  if mode == "dup" then
    -- Duplicates only: the same few requests over and over, built up front.
    dup_n = tonumber(option(args, "dupset", "BENCH_DUPSET", "16"))
    dup_requests = {}
    for i = 1, dup_n do
      local id = delivery_id(nonce, tid, i)
      local tail = tail_of(id)
      dup_requests[i] = wrk.format("POST", "/webhooks/github", {
        ["Content-Type"] = "application/json",
        ["X-GitHub-Event"] = "push",
        ["X-GitHub-Delivery"] = id,
        ["X-Hub-Signature-256"] = "sha256=" .. sign(tail),
      }, PREFIX .. tail)
    end
  end
  if not check then response = nil end
end

local headers = {
  ["Content-Type"] = "application/json",
  ["X-GitHub-Event"] = "push",
}

function request()
  counter = counter + 1
  if mode == "dup" then
    return dup_requests[(counter - 1) % dup_n + 1]
  end
  local id = delivery_id(nonce, tid, counter)
  local tail = tail_of(id)
  headers["X-GitHub-Delivery"] = id
  headers["X-Hub-Signature-256"] = "sha256=" .. sign(tail)
  return wrk.format("POST", "/webhooks/github", headers, PREFIX .. tail)
end

-- Only kept with check=1 (init clears it otherwise): wrk reads bodies and
-- calls into Lua per response only when this function exists.
function response(status, _headers, body)
  if status == 200 then stat_ok = stat_ok + 1 else stat_other = stat_other + 1 end
  if body:find('"duplicate":true', 1, true) then
    stat_dup = stat_dup + 1
  elseif body:find('"duplicate":false', 1, true) then
    stat_new = stat_new + 1
  end
end

function done(summary, latency, requests)
  local ok, other, dup, new = 0, 0, 0, 0
  local used_nonce = threads[1] and threads[1]:get("nonce") or run_nonce
  for _, t in ipairs(threads) do
    ok = ok + (t:get("stat_ok") or 0)
    other = other + (t:get("stat_other") or 0)
    dup = dup + (t:get("stat_dup") or 0)
    new = new + (t:get("stat_new") or 0)
  end
  local e = summary.errors
  io.write(format(
    'BENCH {"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,'
      .. '"err_status":%d,"err_timeout":%d,"check_200":%d,"check_other":%d,'
      .. '"check_dup_true":%d,"check_dup_false":%d,"nonce":"%s","body_bytes":%d}\n',
    summary.requests, summary.duration, summary.requests / summary.duration * 1e6,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout,
    ok, other, dup, new, tostring(used_nonce), #PREFIX + 38))
end
