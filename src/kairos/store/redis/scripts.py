"""The claim's Lua scripts (see ``claim``): one reads what a claim plans from, one commits each
job's part of the plan only if what it was based on is unchanged, and one looks for the next
work due (which the commit also does, when asked, in the same round trip).

Redis runs a script atomically, so the checks and the writes of a commit cannot be interleaved
with any other change. The scripts name the records' keys from the starts of their families
(``Keys.families``) and keep the indexes as ``Tx`` keeps them: a new run in the run ids, its
job's runs, its status and the job's ledger of fires (``fires``); a running run in its node's
set, its node among the holders and its job's count of runs in flight; a queued run in the
queued index. The commit also keeps the summaries of the runs it ends (``stats``: their jobs'
counts and last calls, the runs ended per minute, the failing jobs), as ``stats.count`` does
for ``Tx`` from the same tallies (``stats.counted``, computed in Python).
"""

from __future__ import annotations

__all__ = ["COMMIT", "NEXT", "READ"]

READ = """
-- KEYS: due, queued, running-jobs, beats, nodes.
-- ARGV: job family, run family, node, queued by, queued offset, queued count, due by, due
--   offset, due count, spread (jobs), pick (0..1), then the finished runs' ids.
local job_family, run_family = ARGV[1], ARGV[2]
local function counts(ids)
    local found = {}
    for i, id in ipairs(ids) do found[i] = redis.call('HGET', KEYS[3], id) end
    return found
end
local finished = {}
for i = 12, #ARGV do finished[#finished + 1] = redis.call('GET', run_family .. ARGV[i]) end
local queued = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4], 'LIMIT', ARGV[5], ARGV[6])
local queued_raws, queued_jobs, queued_job_raws = {}, {}, {}
for i, id in ipairs(queued) do
    local raw = redis.call('GET', run_family .. id)
    queued_raws[i] = raw
    queued_jobs[i] = raw and cjson.decode(raw)[1] or ''
    queued_job_raws[i] = redis.call('GET', job_family .. queued_jobs[i])
end
local offset, wanted = tonumber(ARGV[8]), tonumber(ARGV[9])
local nodes = redis.call('ZCARD', KEYS[4])
if nodes > 1 and tonumber(ARGV[10]) > 0 then
    local room = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[7]) - offset - wanted
    room = math.min(room, (nodes - 1) * tonumber(ARGV[10]))
    if room > 0 then offset = offset + math.floor(room * tonumber(ARGV[11])) end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[7], 'LIMIT', offset, wanted)
local due_raws = {}
for i, id in ipairs(due) do due_raws[i] = redis.call('GET', job_family .. id) end
return {redis.call('HGET', KEYS[5], ARGV[3]), finished, queued, queued_raws, queued_job_raws,
    counts(queued_jobs), offset, due, due_raws, counts(due)}
"""
"""What one claim plans from, in one round trip: the node's row (its tasks); the ``finished``
runs' records; the queued runs due (ids, records, their jobs' records and runs in flight); and
a page of the jobs due (the offset it starts at, ids, records, runs in flight). Where several
nodes beat, the page may start up to ``spread`` x (nodes - 1) jobs into those due, ``pick`` of
the way, so that replicas claiming at once mostly take different jobs."""

_PEEK = """
local function peek(jobs, runs, due_offset, due_count, after, queued_offset, queued_count)
    local due, due_raws = {}, {}
    if due_count > 0 then
        due = redis.call('ZRANGE', KEYS[1], due_offset, due_offset + due_count - 1)
    end
    for i, id in ipairs(due) do due_raws[i] = redis.call('GET', jobs .. id) end
    local later = redis.call(
        'ZRANGEBYSCORE', KEYS[2], '(' .. after, '+inf', 'LIMIT', queued_offset, queued_count)
    local raws, job_raws = {}, {}
    for i, id in ipairs(later) do
        raws[i] = redis.call('GET', runs .. id)
        job_raws[i] = raws[i] and redis.call('GET', jobs .. cjson.decode(raws[i])[1])
    end
    return {due, due_raws, later, raws, job_raws}
end
"""

NEXT = (
    _PEEK
    + """
-- KEYS: due, queued. ARGV: job family, run family, due offset, due count, after, queued
--   offset, queued count.
local n = tonumber
return peek(ARGV[1], ARGV[2], n(ARGV[3]), n(ARGV[4]), ARGV[5], n(ARGV[6]), n(ARGV[7]))
"""
)
"""Where the next work due may be: a page of the jobs due (ids, records) and one of the queued
runs due after ``after`` (ids, records, their jobs' records)."""

COMMIT = (
    _PEEK
    + """
-- KEYS: due, queued, running-jobs, runs, holders, run-seq, the node's running runs,
--   ended-minutes, failing.
-- ARGV: node, running, scheduled, the families of jobs, runs, jobs' runs, fires, statuses and
--   jobs' counts, how many jobs and queued runs to peek at after (0: none), after when, then
--   the units (JSON), each one of:
--   ["F", run id, job id, digest as read, record, status, tally]: a finished run;
--   ["J", job id, digest as read, runs in flight as read, bytes of the record kept, the rest
--     of the new record ("": as is), due time ("": none), [[queued run id, digest as read,
--     record, status, tally]...], [[fire, status, record, due time ("": not queued),
--     tally]...]]: a job's part.
-- A digest is a record's SHA-1 (hex); a tally, how a run counts as it ends (null: it does not
-- end), as ``stats.counted`` gives it.
local node, running, scheduled = ARGV[1], ARGV[2], ARGV[3]
local jobs, runs, job_runs, fires, statuses = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local job_stats = ARGV[9]
local held = false
local minutes = {}
-- The summaries' writes of ``stats.count`` (keep the two alike), those of ended-minutes added
-- up and written once per field at the end.
local function count(job_id, tally)
    if tally == cjson.null then return end
    local status, minute, last_us, failed = tally[1], tally[2], tally[3], tally[4]
    redis.call('HINCRBY', job_stats .. job_id, status, 1)
    if minute ~= '' then minutes[minute] = (minutes[minute] or 0) + 1 end
    if last_us == '' then return end
    redis.call('HSET', job_stats .. job_id, 'last', status, 'last_us', last_us)
    if failed ~= '' then
        redis.call('ZADD', KEYS[9], last_us, job_id)
    else
        redis.call('ZREM', KEYS[9], job_id)
    end
end
local function hold(job_id, run_id)
    redis.call('SADD', KEYS[7], run_id)
    redis.call('HINCRBY', KEYS[3], job_id, 1)
    if not held then
        redis.call('SADD', KEYS[5], node)
        held = true
    end
end
local function as_read(key, digest)
    local raw = redis.call('GET', key)
    return raw and redis.sha1hex(raw) == digest and raw
end
local function finish(id, job_id, digest, new, status, tally)
    if not as_read(runs .. id, digest) then return 0 end
    redis.call('SET', runs .. id, new)
    redis.call('ZREM', statuses .. running, id)
    redis.call('ZADD', statuses .. status, id, id)
    redis.call('SREM', KEYS[7], id)
    redis.call('HINCRBY', KEYS[3], job_id, -1)
    count(job_id, tally)
    return 1
end
local function unchanged(job_id, digest, in_flight, queued)
    local raw = as_read(jobs .. job_id, digest)
    if not raw then return false end
    if tonumber(redis.call('HGET', KEYS[3], job_id) or 0) ~= in_flight then return false end
    for _, run in ipairs(queued) do
        if not as_read(runs .. run[1], run[2]) then return false end
    end
    return raw
end
local function start(job_id, id, new, status, tally)
    redis.call('SET', runs .. id, new)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', statuses .. scheduled, id)
    redis.call('ZADD', statuses .. status, id, id)
    if status == running then hold(job_id, id) end
    count(job_id, tally)
end
local function record(job_id, fire, status, new, due, tally)
    if redis.call('HEXISTS', fires .. job_id, fire) == 1 then return 0 end
    local id = redis.call('INCR', KEYS[6])
    redis.call('HSET', fires .. job_id, fire, id)
    redis.call('SET', runs .. id, new)
    redis.call('ZADD', KEYS[4], id, id)
    redis.call('ZADD', job_runs .. job_id, id, id)
    redis.call('ZADD', statuses .. status, id, id)
    if status == running then hold(job_id, id) end
    if due ~= '' then redis.call('ZADD', KEYS[2], due, id) end
    count(job_id, tally)
    return id
end
local function job(job_id, digest, in_flight, kept, rest, due, queued, planned)
    local raw = unchanged(job_id, digest, in_flight, queued)
    if not raw then return {0} end
    for _, run in ipairs(queued) do start(job_id, run[1], run[3], run[4], run[5]) end
    if rest ~= '' then
        redis.call('SET', jobs .. job_id, string.sub(raw, 1, kept) .. rest)
        if due == '' then
            redis.call('ZREM', KEYS[1], job_id)
        else
            redis.call('ZADD', KEYS[1], due, job_id)
        end
    end
    local ids = {1}
    for r, run in ipairs(planned) do ids[r + 1] = record(job_id, unpack(run)) end
    return ids
end
local done = {}
for i, unit in ipairs(cjson.decode(ARGV[12])) do
    if unit[1] == 'F' then
        done[i] = finish(unit[2], unit[3], unit[4], unit[5], unit[6], unit[7])
    else
        done[i] = job(unit[2], unit[3], unit[4], unit[5], unit[6], unit[7], unit[8], unit[9])
    end
end
for minute, n in pairs(minutes) do redis.call('HINCRBY', KEYS[8], minute, n) end
local peeking = tonumber(ARGV[10])
if peeking == 0 then return {done} end
return {done, peek(jobs, runs, 0, peeking, ARGV[11], 0, peeking)}
"""
)
"""Apply a claim's units in order, each only if what it was based on is as read: a finished
run's record (gives 1, else 0); a job's record, its count of runs in flight and its queued runs'
records (gives 1 followed by the new runs' ids, 0 for a fire the ledger already holds; else
{0}: the job is left as it is, due for the next claim). Each run it ends (finished, missed,
recorded ended) is counted in the summaries as it is written. Then, if asked, peek as ``NEXT``
does from the first."""
