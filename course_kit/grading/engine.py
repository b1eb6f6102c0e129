"""The papermill engine ``course-grading``: papermill's notebook client with the grader's rules.

Imported by the runner only when it grades (papermill and nbclient take a second to import).
What it adds to papermill's client: every cell runs even after one raised (errors are
recorded, like nbgrader), limits per cell and per notebook, outputs capped, the stop reason
recorded (timeout, dead kernel, a kernel that no longer speaks the protocol), then the hidden
checks' probes run in the same kernel as one extra cell that never enters the saved notebook,
and the kernel's peak memory is read before it is shut down.

Example::

    papermill_engines.register("course-grading", GradingEngine)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from queue import Empty

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import Engine

from . import procs, sandbox
from .runner import MAX_CELL_OUTPUT_BYTES, MAX_NOTEBOOK_OUTPUT_BYTES, Session, capped_error, read_probe_report


class GradingClient(PapermillNotebookClient):
    """papermill's client, plus: stop reasons recorded, limits per cell, hidden checks at the end."""

    def __init__(self, nb_man, session: Session, **kwargs):
        super().__init__(nb_man, **kwargs)
        self.session = session
        self.timeout_func = session.timeout_for
        self.interrupt_on_timeout = False  # we interrupt ourselves, once, then run the checks
        self.allow_errors = True  # also sends stop_on_error=False: ipykernel must not abort our next request
        self.on_cell_error = self._record_error
        self.shutdown_kernel = "immediate"
        self.skip_cells_with_tag = "course-grading-never-skip"  # students cannot opt out of execution
        # One stdout and one stderr output per cell: the kernel flushes its streams on a timer, so
        # under load one print() can arrive in pieces; feedback and review pages read whole lines.
        self.coalesce_streams = True
        self._output_bytes: dict[int, int] = {}  # per cell index; the notebook's total is their sum
        self._cut_cells: set[int] = set()

    def output(self, outs, msg, display_id, cell_index):
        """nbclient's output handler, keeping at most MAX_CELL_OUTPUT_BYTES per cell and
        MAX_NOTEBOOK_OUTPUT_BYTES per notebook; one note marks where a cell's output was cut."""
        if msg.get("msg_type") == "error":
            # An error is always kept (it says what went wrong), cut like any other output.
            msg = dict(msg, content=capped_error(msg.get("content") or {}))
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = self._output_bytes.get(cell_index, 0)
        total = sum(self._output_bytes.values())
        if (
            self.session.phase == "cells"
            and msg.get("msg_type") != "error"
            and (used + size > MAX_CELL_OUTPUT_BYTES or total + size > MAX_NOTEBOOK_OUTPUT_BYTES)
        ):
            if cell_index not in self._cut_cells:
                self._cut_cells.add(cell_index)
                which = (
                    f"this cell's output passed {MAX_CELL_OUTPUT_BYTES // 1024**2} MB"
                    if used + size > MAX_CELL_OUTPUT_BYTES
                    else f"the notebook's outputs passed {MAX_NOTEBOOK_OUTPUT_BYTES // 1024**2} MB"
                )
                outs.append(
                    nbformat.v4.new_output(
                        "stream",
                        name="stderr",
                        text=(f"[course grade: output cut here: {which}; the rest was not kept]\n"),
                    )
                )
            return None
        self._output_bytes[cell_index] = used + size
        return super().output(outs, msg, display_id, cell_index)

    def execute(self, **kwargs):
        self.reset_execution_trackers()
        with self.setup_kernel(**self.session.job_kernel_kwargs):
            self.session.kernel_started()
            self.papermill_execute_cells()
            self.run_hidden_checks()
            # The kernel (and what it started) at its largest: what --memory and a container must allow.
            self.session.peak_memory = procs.peak_memory_bytes(procs.descendants(os.getpid()))
            self._record_kernel_exit()
        return self.nb

    def papermill_execute_cells(self):
        """Run every cell; errors are recorded and execution goes on (like nbgrader), so later,
        independent exercises still count. A timeout, a dead kernel or a broken kernel stop it."""
        session = self.session
        for index, cell in enumerate(self.nb.cells):
            errors_before = len(session.errors)
            try:
                self.nb_man.cell_start(cell, index)
                self.execute_cell(cell, index)
            except CellTimeoutError:
                self._cancel_leftover_tasks()
                limit = session.which_limit()
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index)
                cell.outputs.append(
                    nbformat.v4.new_output(
                        "error", ename="GradingTimeout", evalue=limit, traceback=[f"GradingTimeout: {limit}"]
                    )
                )
                session.stop = self._where(index, reason="timeout", limit=limit)
            except DeadKernelError:
                self._cancel_leftover_tasks()
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index)
                session.stop = self._where(index, reason="kernel-died")
            except Exception as error:  # noqa: BLE001 - see below
                # The kernel answered with something the Jupyter client cannot accept
                # (student code patched json, the session, the sockets...): the kernel is
                # the student's process, so this is their run failing, not the grader.
                self._cancel_leftover_tasks()
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index)
                session.stop = self._where(
                    index, reason="kernel-broken", error=f"{type(error).__name__}: {str(error)[:300]}"
                )
            finally:
                self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)
            if session.stop is not None:
                break
            if len(session.errors) > errors_before and session.job.get("stop_on_error"):
                break

    def _record_error(self, cell, cell_index, execute_reply):
        """nbclient's on_cell_error hook: note a failed student cell (not the check cell)."""
        if self.session.phase != "cells":
            return
        content = execute_reply.get("content", {})
        self.nb_man.cell_exception(cell, cell_index=cell_index)
        if len(self.session.errors) < 50:
            self.session.errors.append(
                self._where(
                    cell_index, ename=str(content.get("ename", "")), evalue=str(content.get("evalue", ""))[:300]
                )
            )
        else:
            self.session.errors_dropped += 1

    def _where(self, index, **details):
        """Where in the notebook something happened, in every numbering an instructor may use."""
        cell = self.nb.cells[index]
        metadata = cell.get("metadata", {})
        details.update(
            cell_index=index,
            execution_count=cell.get("execution_count"),
            code_cell=sum(1 for c in self.nb.cells[: index + 1] if c.get("cell_type") == "code"),
            exercise=(metadata.get("course") or {}).get("exercise"),
            tags=list(metadata.get("tags", [])),
        )
        return details

    def run_hidden_checks(self):
        session = self.session
        if session.stop and session.stop["reason"] in ("kernel-died", "kernel-broken"):
            session.check_phase, session.check_detail = "skipped", session.stop["reason"]
            return
        if not run_sync(self.km.is_alive)():
            # exit()/quit() in the last cell: the reply came back, then the kernel left.
            session.check_phase, session.check_detail = "skipped", "kernel-died"
            session.stop = self._where(len(self.nb.cells) - 1, reason="kernel-died")
            return
        if session.stop and session.stop["reason"] == "timeout":
            # The kernel is still busy with the timed-out cell: interrupt it and wait for
            # it to go idle (a request sent earlier would be aborted by ipykernel).
            if not self._interrupt_and_wait(10) and not self._interrupt_and_wait(5):
                session.check_phase = "skipped"
                session.check_detail = "the kernel ignored the interrupt after the timeout"
                return
        session.phase = "checks"
        session.check_deadline = time.monotonic() + float(session.job["check_timeout"])
        cell = nbformat.v4.new_code_cell(source=session.check_cell_source())
        # nbclient stores the executed cell back into self.nb; give it a one-cell notebook
        # so the check code never enters the notebook papermill saves.
        student_nb, self.nb = self.nb, nbformat.v4.new_notebook(cells=[cell])
        try:
            self.execute_cell(cell, 0, store_history=False)
            session.check_phase = "ran"
        except CellTimeoutError:
            self._cancel_leftover_tasks()
            session.check_phase = "timeout"
            session.check_detail = f"the hidden checks ran past {session.job['check_timeout']:g} s"
        except DeadKernelError:
            self._cancel_leftover_tasks()
            session.check_phase, session.check_detail = "kernel-died", "the kernel died while the hidden checks ran"
        except Exception as error:  # noqa: BLE001 - a kernel broken by student code (see above)
            self._cancel_leftover_tasks()
            session.check_phase = "kernel-broken"
            session.check_detail = f"{type(error).__name__}: {str(error)[:300]}"
        finally:
            self.nb = student_nb
        session.records, started, session.report_complete = read_probe_report(session.report_path)
        if not started and session.check_phase == "timeout":
            # Not one line of the probes ran: the kernel could no longer run a cell at all
            # (IPython cannot start a cell once sys.stdout is None, for one). The student's doing.
            session.check_phase = "cannot-start"
            session.check_detail = (
                "the kernel could not start the hidden checks: the notebook left it "
                "unable to run a cell (sys.stdout or sys.stderr replaced, or a thread "
                "that never lets go)"
            )

    def _interrupt_and_wait(self, seconds: float) -> bool:
        run_sync(self.km.interrupt_kernel)()
        return run_sync(self._async_wait_idle)(seconds)

    async def _async_wait_idle(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = await self.kc.iopub_channel.get_msg(timeout=remaining)
            except Empty:
                return False
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                return True
        return False

    def _cancel_leftover_tasks(self):
        """nbclient leaves its output-polling task running after a timeout; it would eat the
        next cell's messages. Cancel everything still pending on this thread's loop."""
        from jupyter_core.utils import ensure_event_loop

        loop = ensure_event_loop()
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    def _record_kernel_exit(self):
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None:
            self.session.kernel_exit = sandbox.kernel_exit_status(process.poll(), self.session.job.get("sandbox"))


class GradingEngine(Engine):
    """papermill engine ``course-grading``: the client above, with our kernel manager."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, session=None, km=None, start_timeout=60, **kwargs):
        client = GradingClient(
            nb_man, session=session, km=km, kernel_name=kernel_name, startup_timeout=start_timeout, log_output=False
        )
        return client.execute()
