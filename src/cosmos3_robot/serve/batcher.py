"""Steps the sessions of every request waiting at that moment in one backend call.

Requests hand their sessions and actions to `StepBatcher.step` and wait; one stepping thread takes everything
waiting, joins the sessions that can be joined (`concat_sessions`: no batch-wide generator, same instruction) and
steps them with one `backend.step`. While that call runs, new requests queue up and the next call takes them all:
there is no timer, so a lone request waits for nothing. Sessions that cannot join are stepped alone, as before.
A failed joint call is retried one request at a time, so a bad request fails alone; it leaves the sessions as they
were (it steps a joined copy of them)."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from ..backends.base import Prediction, Session, concat_sessions


@dataclass
class _Waiting:
    sessions: list[Session]
    actions: list[np.ndarray]  # per session (B_i, A)
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Prediction] | None = None
    error: BaseException | None = None


def _rows(pred: Prediction, start: int, stop: int) -> Prediction:
    return Prediction(frames={c: f[start:stop] for c, f in pred.frames.items()}, state=pred.state[start:stop],
                      reward=pred.reward[start:stop], success=pred.success[start:stop],
                      info={k: v[start:stop] for k, v in pred.info.items()})


class StepBatcher:
    """One backend call for all waiting sessions. `lock` is held around every model call (the server's other
    model work, e.g. inverse dynamics, takes it too). `max_batch`: most session rows per call. `calls`, `rows`
    and `largest` count what was stepped (rows per call = the batching achieved)."""

    def __init__(self, backend, lock: threading.Lock, max_batch: int = 256):
        self.backend, self.lock, self.max_batch = backend, lock, int(max_batch)
        self._cv = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._thread: threading.Thread | None = None
        self.calls = self.rows = self.largest = 0

    def step(self, sessions: list[Session], actions: list[np.ndarray]) -> list[Prediction]:
        """Step each session by its actions (B_i, A) -> one Prediction per session; blocks until done."""
        item = _Waiting(list(sessions), [np.asarray(a, np.float64) for a in actions])
        with self._cv:
            if self._thread is None:  # started at the first step (again after a close)
                self._thread = threading.Thread(target=self._loop, args=(self._thread_stop(),), name="step-batcher",
                                                daemon=True)
                self._thread.start()
            self._waiting.append(item)
            self._cv.notify_all()
        item.done.wait()
        if item.error is not None:
            raise item.error
        return item.result

    def _thread_stop(self) -> threading.Event:
        self._stop = threading.Event()
        return self._stop

    def close(self) -> None:
        """Let the stepping thread end once nothing waits (a later step starts a new one)."""
        with self._cv:
            if self._thread is not None:
                self._stop.set()
                self._thread = None
                self._cv.notify_all()

    def _loop(self, stop: threading.Event) -> None:
        while True:
            with self._cv:
                while not self._waiting and not stop.is_set():
                    self._cv.wait()
                if not self._waiting:
                    return
                items, self._waiting = self._waiting, []
            self._serve(items)

    def _serve(self, items: list[_Waiting]) -> None:
        results = {id(it): [None] * len(it.sessions) for it in items}
        groups: dict[object, list[tuple[_Waiting, int]]] = defaultdict(list)
        for it in items:
            for j, s in enumerate(it.sessions):
                # sessions with a batch-wide generator step alone; the others join per instruction
                groups[("alone", id(it), j) if s.generator is not None else ("join", s.instruction)].append((it, j))
        failed: set[int] = set()
        for members in groups.values():
            for start in range(0, len(members), self.max_batch):
                part = members[start: start + self.max_batch]
                try:
                    self._call(part, results)
                except Exception as e:  # noqa: BLE001 (handed to the request that sent it)
                    owners = {id(it) for it, _ in part}
                    if len(owners) == 1:
                        part[0][0].error = e
                        failed.add(id(part[0][0]))
                        continue
                    for owner in owners:  # one request at a time, so a bad one fails alone
                        mine = [(it, j) for it, j in part if id(it) == owner]
                        try:
                            self._call(mine, results)
                        except Exception as e1:  # noqa: BLE001
                            mine[0][0].error = e1
                            failed.add(owner)
        for it in items:
            if id(it) not in failed:
                it.result = results[id(it)]
            it.done.set()

    def _call(self, part: list[tuple[_Waiting, int]], results: dict) -> None:
        sessions = [it.sessions[j] for it, j in part]
        actions = np.concatenate([it.actions[j] for it, j in part])
        if len(part) == 1:
            joint = sessions[0]
        else:
            joint = concat_sessions(sessions)
        with self.lock:
            pred = self.backend.step(joint, actions)
        self.calls, self.rows, self.largest = self.calls + 1, self.rows + len(actions), max(self.largest, len(actions))
        at = 0
        for (it, j), s in zip(part, sessions):
            n = len(it.actions[j])
            if joint is not s:  # the session's own rows of the joint call, copied out
                s.data.update({k: v[at: at + n].clone() if isinstance(v, torch.Tensor) else v[at: at + n].copy()
                               for k, v in joint.data.items()})
            results[id(it)][j] = _rows(pred, at, at + n)
            at += n
