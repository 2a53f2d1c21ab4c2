"""arq's ``Worker`` with its per-job Redis round trips shared by the jobs that start or end together.

arq claims each job it reads from the queue with a WATCH transaction of its own (WATCH the job's in-progress key,
EXISTS, ZSCORE, then MULTI/PSETEX/EXEC: four round trips per job), and finishes each job with a MULTI/EXEC of its
own. A busy worker spent more of its CPU on those round trips than on the tasks. ``ConduitWorker`` keeps arq's
semantics and data layout (any arq worker or client still reads the same keys) and changes only how they are sent:

* **claims**: the jobs one poll reads are claimed in one Lua script call (atomic, as the WATCH transaction is): a
  job is started only when no worker holds its in-progress key and its score is due, and the script sets the key
  for those it returns;
* **finishes**: the jobs that end while a finish is being written go to Redis together, in one MULTI/EXEC;
* **jobs this worker runs are not offered again**: a job stays in the queue while it runs, so every poll reads it
  again; arq would check it out in Redis before skipping it, this worker skips it at once.
"""

from __future__ import annotations

from typing import Any

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms, to_ms
from arq.worker import Worker
from redis.asyncio.client import Pipeline

from shared.infra.group_commit import GroupCommit
from shared.infra.redis_scripts import Arg, LuaScript, ScriptCall, run_scripts

# KEYS[1]: the queue (a sorted set scored by when each job is due); KEYS[2..]: the offered jobs' in-progress keys.
# ARGV[1]: now (ms); ARGV[2]: how long an in-progress key lives (ms); ARGV[3]: how many jobs to claim at most;
# ARGV[4..]: the offered job ids, in KEYS order. Returns id, score, id, score, ... of the jobs it claimed.
CLAIM_JOBS = LuaScript(
    """
local claimed = {}
local now = tonumber(ARGV[1])
local room = tonumber(ARGV[3])
for i = 2, #KEYS do
  if #claimed >= 2 * room then
    break
  end
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local id = ARGV[i + 2]
    local score = redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) <= now then
      redis.call('PSETEX', KEYS[i], ARGV[2], '1')
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = score
    end
  end
end
return claimed
"""
)

# What arq's ``Worker.finish_job`` takes after the job id.
Finish = tuple[str, bool, bytes | None, float | None, bool, int | None, float | None]


class ConduitWorker(Worker):
    """arq's ``Worker``: claims and finishes in shared round trips; jobs it runs are not re-examined."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._finishes: GroupCommit[Finish, None] = GroupCommit(self._write_finishes)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Start the jobs of ``job_ids`` (due jobs read from the queue) that no worker runs, as many as this worker
        has room for: one claim for them all."""
        running = {job_id for job_id, task in self.tasks.items() if not task.done()}  # a done one may run again
        room = self.max_jobs - self.job_counter
        offered = [job_id for job_id in (raw.decode() for raw in job_ids) if job_id not in running]
        if not offered or room < 1:
            return
        self.job_counter += room  # held while the claim is out, as arq holds a place for each job it examines
        try:
            claimed = await self._claim(offered, room)
        finally:
            self.job_counter -= room
        for job_id, score in claimed:
            await self.sem.acquire()  # the room above: it does not wait
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def _claim(self, job_ids: list[str], room: int) -> list[tuple[str, int]]:
        keys = [self.queue_name, *(in_progress_key_prefix + job_id for job_id in job_ids)]
        args: list[Arg] = [timestamp_ms(), int(self.in_progress_timeout_s * 1000), room, *job_ids]
        [answer] = await run_scripts(self.pool, [ScriptCall(CLAIM_JOBS, keys, args)])
        if isinstance(answer, Exception):
            raise answer
        pairs = [value.decode() if isinstance(value, bytes) else str(value) for value in answer]
        return [(pairs[n], int(float(pairs[n + 1]))) for n in range(0, len(pairs), 2)]

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's finish of one job, written with those of the jobs that end at about the same time."""
        await self._finishes.submit(
            (job_id, finish, result_data, result_timeout_s, keep_result_forever, incr_score, keep_in_progress)
        )

    async def _write_finishes(self, finishes: list[Finish]) -> list[Exception | None]:
        async with self.pool.pipeline(transaction=True) as tr:
            for finish in finishes:
                self._finish_commands(tr, finish)
            await tr.execute()
        return [None] * len(finishes)

    def _finish_commands(self, tr: Pipeline, finish: Finish) -> None:
        """The commands of arq's ``Worker.finish_job`` for one job."""
        job_id, finished, result_data, result_timeout_s, keep_result_forever, incr_score, keep_in_progress = finish
        in_progress_key = in_progress_key_prefix + job_id
        delete_keys = []
        if keep_in_progress is None:
            delete_keys.append(in_progress_key)
        else:
            tr.pexpire(in_progress_key, to_ms(keep_in_progress))
        if finished:
            if result_data:
                expire = None if keep_result_forever else result_timeout_s
                tr.set(result_key_prefix + job_id, result_data, px=to_ms(expire))
            delete_keys += [retry_key_prefix + job_id, job_key_prefix + job_id]
            tr.zrem(abort_jobs_ss, job_id)
            tr.zrem(self.queue_name, job_id)
        elif incr_score:
            tr.zincrby(self.queue_name, incr_score, job_id)
        if delete_keys:
            tr.delete(*delete_keys)
