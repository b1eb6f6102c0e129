"""Where grading tasks run: a local pool (default) or a Dask cluster.

Both executors run the same function, :func:`course_kit.grading.job.grade_job`, on the
same :class:`~course_kit.grading.job.GradingJob` objects, and hand each result to
``on_result`` in the calling thread as soon as it finishes, so the gradebook is written
by one thread only and in the same way for both.

* :class:`LocalExecutor` (``-j N``): N threads, each supervising one runner process at
  a time (the work happens in those processes, so threads are enough).
* :class:`DaskExecutor` (``--executor dask --scheduler ADDRESS``): one task per
  submission on a ``dask.distributed`` cluster; each task runs the runner process on its
  worker. Start workers with one thread each (``dask worker ADDRESS --nthreads 1
  --nworkers K``) so each grades one notebook at a time; on Slurm/PBS,
  ``dask-jobqueue`` provides the scheduler address.

Interruption (Ctrl-C, SIGTERM): pending tasks are cancelled, running ones are told to
stop (a ``threading.Event`` locally, a ``distributed.Event`` on the cluster), kill
their runner's whole process tree and return ``{"cancelled": True}``; ``run`` then
re-raises ``KeyboardInterrupt``. Rows finished before stay in the gradebook.

Example::

    LocalExecutor(jobs=2).run(grading_jobs, on_result=gradebook.record)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from .job import GradingJob, error_result, grade_job

CANCEL_WAIT_SECONDS = 30.0


class LocalExecutor:
    """Grade on this machine, ``jobs`` submissions at a time.

    Example::

        LocalExecutor(jobs=4).run(jobs, print)
    """

    def __init__(self, jobs: int = 1):
        if jobs < 1:
            raise ValueError(f"-j must be at least 1, got {jobs}")
        self.jobs = jobs

    def run(self, jobs: Iterable[GradingJob], on_result: Callable[[dict], None]) -> None:
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="grade")
        futures = {pool.submit(grade_job, job, stop.is_set) for job in jobs}
        try:
            pending = set(futures)
            while pending:
                # A timeout keeps the main thread responsive to Ctrl-C while it waits.
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    if not result.get("cancelled"):
                        on_result(result)
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            wait(futures, timeout=CANCEL_WAIT_SECONDS)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _dask_task(job: GradingJob, event_name: str) -> dict:
    """Runs on a Dask worker: grade one job, stopping when the run's cancel event is set."""
    from distributed import Event

    event = Event(event_name)
    last_check = [0.0, False]

    def cancelled() -> bool:
        # Asking the scheduler costs a round trip: once a second is plenty.
        now = time.monotonic()
        if now - last_check[0] >= 1.0:
            last_check[0] = now
            try:
                last_check[1] = event.is_set()
            except Exception:  # scheduler unreachable: keep grading, its own deadline still applies
                pass
        return last_check[1]

    return grade_job(job, cancelled)


class DaskExecutor:
    """Grade on a Dask cluster reachable at ``scheduler`` (``tcp://host:8786``).

    Example::

        DaskExecutor("tcp://127.0.0.1:8786").run(jobs, gradebook.record)
    """

    def __init__(self, scheduler: str, connect_timeout: float = 30.0):
        if not scheduler:
            raise ValueError("--executor dask needs --scheduler ADDRESS (for example tcp://10.0.0.5:8786)")
        self.scheduler = scheduler
        self.connect_timeout = connect_timeout

    def run(self, jobs: Iterable[GradingJob], on_result: Callable[[dict], None]) -> None:
        try:
            from distributed import Client, as_completed
        except ImportError as error:
            raise RuntimeError(
                "the Dask executor needs dask.distributed: pip install 'course-utils[grading]'"
            ) from error
        client = Client(self.scheduler, timeout=self.connect_timeout)
        event_name = f"course-grade-cancel-{uuid.uuid4().hex}"
        futures: dict = {}
        try:
            for job in jobs:
                future = client.submit(
                    _dask_task, job, event_name, pure=False, key=f"grade-{job.student}-{uuid.uuid4().hex[:8]}"
                )
                futures[future] = job
            for future in as_completed(list(futures)):
                try:
                    result = future.result()
                except Exception as error:  # e.g. KilledWorker: that submission's row says so, the rest go on
                    result = error_result(futures[future], f"the Dask task failed: {type(error).__name__}: {error}")
                if not result.get("cancelled"):
                    on_result(result)
        except BaseException:
            self._stop_tasks(client, list(futures), event_name)
            raise
        finally:
            client.close()

    @staticmethod
    def _stop_tasks(client, futures, event_name) -> None:
        """Tell running tasks to kill their runners, wait for them, then drop the rest."""
        from distributed import Event

        try:
            Event(event_name, client=client).set()
            # Tasks that start from now on return at once; running ones notice within about
            # a second, kill their runner's process tree and return.
            deadline = time.monotonic() + CANCEL_WAIT_SECONDS
            while time.monotonic() < deadline and any(f.status == "pending" for f in futures):
                time.sleep(0.2)
            client.cancel(futures)
        except Exception:  # the cluster is gone: nothing left there to stop
            pass
