"""The Lua scripts of ``shared.ratelimits.limiter``: each runs atomically in Redis, on Redis's own clock."""

# KEYS[1] the key. ARGV: emission interval (ms per request), burst, cost, dry run (1/0).
# Returns {allowed (1/0), remaining, retry_after_ms, reset_after_ms}.
GCRA = """
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local dry = ARGV[4] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tolerance = emission * burst
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
    tat = now
end
local new_tat = tat + emission * cost
local allow_at = new_tat - tolerance
if now < allow_at then
    local remaining = math.floor((now - (tat - tolerance)) / emission)
    if remaining < 0 then remaining = 0 end
    local retry = allow_at - now
    if cost > burst then retry = -1 end
    return {0, remaining, retry, tat - now}
end
if not dry and cost > 0 then
    redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
end
local remaining = math.floor((now - allow_at) / emission)
local reset = new_tat - now
if dry or cost == 0 then
    remaining = math.floor((now - (tat - tolerance)) / emission)
    reset = tat - now
end
return {1, remaining, 0, reset}
"""


# KEYS[1] the key. ARGV: emission interval (ms per request), cost. Moves the TAT back by what ``cost`` requests
# consumed, never before now (a key whose burst is full again is deleted). Returns 1.
REFUND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil then
    return 1
end
local new_tat = tat - tonumber(ARGV[1]) * tonumber(ARGV[2])
if new_tat <= now then
    redis.call('DEL', KEYS[1])
else
    redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now))
end
return 1
"""


# KEYS: the GCRA keys (n_rates of them), then the slot sets (n_slots), then the index of slot sets.
# ARGV[1]: the member; ARGV[2]: the policy, space-separated: n_rates n_slots slot_ttl_ms, then per rate its
# emission (ms) and burst, then per slot its limit (one argument, cheap to send: it is the same every time).
# Returns, per rate then per slot: allowed (1/0), remaining, retry_after_ms (-1: unknown), reset_after_ms.
# Consumes nothing unless every limit allows.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local spec = {}
for v in string.gmatch(ARGV[2], '%S+') do
    table.insert(spec, tonumber(v))
end
local n_rates = spec[1]
local n_slots = spec[2]
local ttl = spec[3]
local out = {}
local ok = true
local tats = {}
local counts = {}
for i = 1, n_rates do
    local emission = spec[2 + 2 * i]
    local burst = spec[3 + 2 * i]
    local tolerance = emission * burst
    local tat = tonumber(redis.call('GET', KEYS[i]))
    if tat == nil or tat < now then
        tat = now
    end
    local new_tat = tat + emission
    local allow_at = new_tat - tolerance
    if now < allow_at then
        ok = false
        local remaining = math.floor((now - (tat - tolerance)) / emission)
        if remaining < 0 then remaining = 0 end
        for _, v in ipairs({0, remaining, math.ceil(allow_at - now), math.ceil(tat - now)}) do table.insert(out, v) end
    else
        tats[i] = new_tat
        local remaining = math.floor((now - allow_at) / emission)
        for _, v in ipairs({1, remaining, 0, math.ceil(new_tat - now)}) do table.insert(out, v) end
    end
end
local base = 3 + 2 * n_rates
for j = 1, n_slots do
    local key = KEYS[n_rates + j]
    local limit = spec[base + j]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local count = redis.call('ZCARD', key)
    counts[j] = count
    if count >= limit then
        ok = false
        for _, v in ipairs({0, 0, -1, 0}) do table.insert(out, v) end
    else
        for _, v in ipairs({1, limit - count - 1, 0, 0}) do table.insert(out, v) end
    end
end
if ok then
    for i = 1, n_rates do
        redis.call('SET', KEYS[i], tostring(tats[i]), 'PX', math.max(1, math.ceil(tats[i] - now)))
    end
    for j = 1, n_slots do
        local key = KEYS[n_rates + j]
        -- every member expires within ttl, so the set may too
        redis.call('ZADD', key, now + ttl, member)
        redis.call('PEXPIRE', key, ttl)
        if counts[j] == 0 then
            redis.call('SADD', KEYS[n_rates + n_slots + 1], key)
        end
    end
end
return out
"""


# KEYS: slot sets; ARGV: the members to remove from each.
RELEASE = """
for _, key in ipairs(KEYS) do
    redis.call('ZREM', key, unpack(ARGV))
end
return 1
"""


# KEYS: slot sets, then the index of slot sets. ARGV[1]: slot ttl (ms); ARGV[2]: n, the number of members; then the
# n members; then each slot set's limit. Takes a slot in every set for every member if each set has room for all
# of them; otherwise takes nothing. Returns, per slot set: allowed (1/0), the slots left (after, if taken).
ADMIT_MANY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local n_slots = #KEYS - 1
local out = {}
local ok = true
for j = 1, n_slots do
    redis.call('ZREMRANGEBYSCORE', KEYS[j], '-inf', now)
    local count = redis.call('ZCARD', KEYS[j])
    local limit = tonumber(ARGV[2 + n + j])
    if count + n > limit then
        ok = false
        table.insert(out, 0)
        table.insert(out, math.max(0, limit - count))
    else
        table.insert(out, 1)
        table.insert(out, limit - count - n)
    end
end
if ok then
    for j = 1, n_slots do
        for i = 1, n do
            redis.call('ZADD', KEYS[j], now + ttl, ARGV[2 + i])
        end
        redis.call('PEXPIRE', KEYS[j], ttl)
        redis.call('SADD', KEYS[n_slots + 1], KEYS[j])
    end
end
return out
"""
