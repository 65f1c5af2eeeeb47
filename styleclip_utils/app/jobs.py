"""Long edits as jobs: a latent optimisation takes seconds to minutes, longer than a request should wait.

    jobs = JobQueue(service)
    job = jobs.submit(params)            # checked now (a bad request is refused, never queued), run in order
    jobs.get(job.id).to_dict()           # state, step / steps, progress, result id or error
    jobs.cancel(job.id)                  # stops it at its next step; a queued job never starts

One worker thread runs the jobs in order: two optimisations at once on a CPU only take twice as long each.
At most `max_queued` wait; more are refused (HTTP 429). The last `keep` finished jobs are remembered.
"""
import threading
import time
import traceback
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .service import AppError, JobCancelled

STATES = ("queued", "running", "done", "failed", "cancelled")


@dataclass
class Job:
    id: str
    params: object
    state: str = "queued"
    step: int = 0
    steps: int = 0
    created: float = field(default_factory=time.time)
    started: float = None
    finished: float = None
    result: dict = None
    error: str = None
    status: int = None        # the HTTP code of a failure
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def to_dict(self):
        done = self.state in ("done", "failed", "cancelled")
        return dict(id=self.id, state=self.state, step=self.step, steps=self.steps,
                    progress=round(self.step / self.steps, 3) if self.steps else 0.0,
                    seconds=round((self.finished or time.time()) - (self.started or self.created), 2),
                    result=self.result, error=self.error, status=self.status, done=done)


class JobQueue:
    def __init__(self, service, max_queued=4, keep=32):
        self.service, self.max_queued, self.keep = service, max_queued, keep
        self._jobs = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edit-job")
        self._n = 0

    def submit(self, params):
        p = self.service.check(params)  # AppError now, not a failed job later
        with self._lock:
            waiting = sum(j.state in ("queued", "running") for j in self._jobs.values())
            if waiting >= self.max_queued:
                raise AppError(429, f"{waiting} optimisation jobs are queued or running (at most {self.max_queued}); "
                                    f"wait for one to finish, or use method 'global' or 'mapper' (instant)")
            self._n += 1
            job = Job(f"j{self._n:06d}", p, steps=p.steps)
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job)
        return job

    def _forget_old(self):
        finished = [k for k, j in self._jobs.items() if j.state in ("done", "failed", "cancelled")]
        for k in finished[:max(0, len(finished) - self.keep)]:
            del self._jobs[k]

    def _run(self, job):
        with self._lock:  # against a cancel() in between
            if job.cancel_requested.is_set():
                job.state, job.finished = "cancelled", time.time()
                return
            job.state, job.started = "running", time.time()
        try:
            job.result = self.service.edit(job.params, job=job)
            job.state = "done"
        except JobCancelled:
            job.state = "cancelled"
        except AppError as e:
            job.state, job.error, job.status = "failed", e.message, e.status
        except Exception as e:  # the worker must survive any job; the error is the job's
            traceback.print_exc()
            job.state, job.error, job.status = "failed", f"internal error: {type(e).__name__}: {e}", 500
        finally:
            job.finished = time.time()

    def get(self, job_id):
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise AppError(404, f"no job {job_id!r} (the last {self.keep} finished jobs are kept)")
        return job

    def cancel(self, job_id):
        job = self.get(job_id)
        with self._lock:
            job.cancel_requested.set()
            if job.state == "queued":
                job.state, job.finished = "cancelled", time.time()
        return job

    def shutdown(self):
        for job in list(self._jobs.values()):
            job.cancel_requested.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
