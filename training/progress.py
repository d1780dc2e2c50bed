"""Progress that reads well both in a terminal (a tqdm bar) and in a log file (a plain line every tenth of the run,
instead of a bar redrawn with carriage returns). Summaries always go on lines of their own."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class Progress:
    def __init__(self, total: int, initial: int, description: str, enabled: bool):
        self.total, self.step, self.description, self.enabled = total, initial, description, enabled
        self.postfix = ""
        self.bar = tqdm(total=total, initial=initial, desc=description) if enabled and sys.stderr.isatty() else None
        self.every = max(1, total // 10)

    def update(self, step: int, **postfix: str) -> None:
        self.step = step
        self.postfix = ", ".join(f"{k}={v}" for k, v in postfix.items())
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(postfix, refresh=False)
        elif self.enabled and (step % self.every == 0 or step == self.total):
            print(f"{self.description}: step {step}/{self.total} {self.postfix}", file=sys.stderr, flush=True)

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line)  # above the bar, never glued to it
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
