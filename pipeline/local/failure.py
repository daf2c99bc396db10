"""A failed job's reason, as SageMaker reports it: the text of ``/opt/ml/output/failure``.

When that file is missing or empty (a process killed outright, a script that wrote an
empty one), or its text leaves out the error or where it is, the job's log says it: its
last error line and traceback location are added. The toolkit keeps the stderr lines of
an error from its name on, so a ``SyntaxError`` loses the ``File ..., line N`` above it,
and it reads stderr in chunks, so an error name split across two chunks is missed and the
message is empty.
"""

from __future__ import annotations

import re

LOCATION = re.compile(r'File "([^"]+)", line (\d+)')
ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning))\b(:.*)?$")
TAIL_LINES = 5
TRACEBACK = "Traceback (most recent call last):"
TOOLKIT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # a logging line, not the script's stderr


def _where(log: str) -> str | None:
    locations = LOCATION.findall(log)
    if not locations:
        return None
    path, line = locations[-1]
    return f'File "{path}", line {line}'


def _last_error(log: str) -> str | None:
    """The error line ending the last traceback (before the toolkit's next log line, which may repeat it
    mangled). The toolkit echoes unbuffered stderr writes as lines of their own, so ``ValueError``,
    ``:`` and the message may come on three lines, or ``: message`` on the second."""
    in_traceback = TRACEBACK in log
    lines = []
    for line in log.rsplit(TRACEBACK, 1)[-1].splitlines():
        if TOOLKIT_LINE.match(line):
            if in_traceback:
                break  # the traceback ended: what follows is the toolkit's report
            continue
        if line.strip():
            lines.append(line.strip())
    for i in range(len(lines) - 1, -1, -1):
        if ERROR_LINE.match(lines[i]):
            if ":" not in lines[i] and i + 1 < len(lines) and lines[i + 1].startswith(":"):
                # The name, then the rest as the chunks came: ":" and the message, or ": message".
                return re.sub(r"\s*:\s*", ": ", " ".join(lines[i:]), count=1)
            return lines[i]
    return None


def reason(failure_file: str | None, log: str, exit_code: int) -> str:
    """The failure file's text, completed from the log where it says nothing, or nothing useful."""
    text = (failure_file or "").strip()
    error, where = _last_error(log), _where(log)
    if text:
        missing = [error] if error and error not in text else []
        missing += [where] if where and not LOCATION.search(text) else []
        return f"{text}\n(from the log: {'; '.join(missing)})" if missing else text
    file = "no output/failure file was written" if failure_file is None else "the output/failure file is empty"
    found = "; ".join(part for part in (error, where) if part)
    if found:
        return f"{found} (exit {exit_code}; {file})"
    tail = [line for line in log.splitlines() if line.strip()][-TAIL_LINES:]
    ending = " | ".join(line.strip() for line in tail) or "nothing"
    return f"exit {exit_code}; {file}; the log ends: {ending}"
