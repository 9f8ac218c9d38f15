#!/usr/bin/env python3
"""
Runs ClickHouse statements on chdb (current ClickHouse, in-process) for the tests: one session per process, in a
directory of its own that is removed at exit.

Protocol, one JSON object per line:
  first line out: {"ready": true, "chdb": "4.4.0", "clickhouse": "26.9.2.1"}
                  or {"ready": false, "error": "..."} and exit status 3 when chdb cannot be imported;
  in:  {"id": 1, "sql": "...", "format": "JSONEachRow"}   (format optional, JSONEachRow by default)
  out: {"id": 1, "ok": true, "data": "<the result, as text>"} or {"id": 1, "ok": false, "error": "..."}
Ends at end of input.
"""
import json
import os
import shutil
import sys
import tempfile


def main() -> int:
    # Answers go to a private copy of stdout; anything chdb itself prints goes to stderr.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    def answer(**fields) -> None:
        answers.write(json.dumps(fields) + "\n")
        answers.flush()

    try:
        import chdb
        from chdb import session
    except Exception as error:  # missing, or half installed
        answer(ready=False, error=f"cannot import chdb ({type(error).__name__}: {error}; python: {sys.executable})")
        return 3

    path = tempfile.mkdtemp(prefix="echodb-chdb-")
    try:
        try:
            db = session.Session(path)
            version = db.query("SELECT version()", "TabSeparatedRaw").data().strip()
        except Exception as error:  # half installed
            answer(ready=False, error=f"chdb does not start ({type(error).__name__}: {error}; python: {sys.executable})")
            return 3
        try:
            answer(ready=True, chdb=chdb.__version__, clickhouse=version)
            for line in sys.stdin.buffer:
                if not line.strip():
                    continue
                request = json.loads(line.decode("utf-8"))
                try:
                    result = db.query(request["sql"], request.get("format", "JSONEachRow"))
                    answer(id=request["id"], ok=True, data=result.bytes().decode("utf-8"))
                except Exception as error:  # a statement ClickHouse refused: the test reads the message
                    answer(id=request["id"], ok=False, error=str(error))
        finally:
            db.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
