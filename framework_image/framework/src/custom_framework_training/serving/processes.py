"""gunicorn's master and gevent worker, changed so that a stop signal is never lost and a stuck handler's
caller gets an answer.

gunicorn forks a worker with the master's signal handlers still installed; until the worker
has installed its own (after gevent's monkey-patching), a SIGTERM the master forwards on a
stop lands in the worker's copy of the master's queue, which nobody reads. The master then
waits its whole graceful timeout and SIGKILLs the worker, so a stop right after start (a
short batch transform, a test) took 30 s. Here the master blocks the stop signals across the
fork and the worker unblocks them once its handlers are in place: a stop that came while it
booted is delivered then, and the worker exits as promptly as one already serving.

A handler holding the CPU past ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` stops the worker's heartbeat;
the master then sends SIGABRT, which gunicorn's worker turns into an exit that the gevent worker
swallows, leaving the caller without an answer until the connection times out. Here it ends
that request with the 504 a request cut off by the timeout gets (as the containers' nginx
answers), and the worker stops; the master forks a fresh one.
"""

from __future__ import annotations

import gc
import signal
from types import FrameType

import gevent
from gunicorn.arbiter import Arbiter as GunicornArbiter
from gunicorn.workers.ggevent import GeventWorker as GunicornGeventWorker

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})


class RequestTimeout(BaseException):
    """Raised into a request's greenlet when it passes the model server timeout (not an ``Exception``, so a
    handler's ``except Exception`` cannot swallow it)."""


class Arbiter(GunicornArbiter):
    """The master: forks each worker with the stop signals blocked (held pending, not lost)."""

    def spawn_worker(self) -> int:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return super().spawn_worker()  # in the worker, this returns only by SystemExit, at its end
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class GeventWorker(GunicornGeventWorker):
    """gunicorn's gevent worker, taking the stop signals once it can handle them, answering a request stuck on the
    CPU when it is aborted, and exiting without a final garbage collection."""

    def init_signals(self) -> None:
        super().init_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def handle_abort(self, sig: int, frame: FrameType | None) -> None:
        """The master's SIGABRT: no heartbeat for the model server timeout. It runs in the greenlet holding the
        CPU (a handler: cut it off, answer 504, then stop) or, on a late heartbeat only, elsewhere (stop)."""
        self.alive = False
        self.cfg.worker_abort(self)
        if isinstance(gevent.getcurrent(), gevent.Greenlet):  # a request's, not the hub or the main loop
            raise RequestTimeout
        super().handle_abort(sig, frame)

    def run(self) -> None:
        super().run()
        # Served and stopped: the final collection of every object (the model's included) at exit only delays
        # the stop, about 0.2 s a worker, while the workers share the CPUs.
        gc.freeze()
